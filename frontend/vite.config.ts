/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { defineConfig, type Plugin } from "vite";

/** Pre-compressed .gz and .br siblings of the built assets: WhiteNoise serves them to clients
 * that accept them (a third of the bytes), with no compression work per request. */
function precompress(dirs = ["dist/assets", "dist/speedscope"]): Plugin {
  return {
    name: "moe-hub-precompress",
    apply: "build",
    closeBundle() {
      for (const dir of dirs) for (const f of existsSync(dir) ? readdirSync(dir) : []) {
        if (!/\.(js|css|svg|json)$/.test(f)) continue;
        const path = join(dir, f);
        const data = readFileSync(path);
        if (data.length < 1024) continue;
        writeFileSync(`${path}.gz`, gzipSync(data, { level: 9 }));
        writeFileSync(`${path}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
      }
    },
  };
}

/** speedscope's release bundle (the npm package ships it built, in dist/release/) copied to
 * dist/speedscope/, so that deep dives into a profile open a local speedscope
 * (/speedscope/index.html#profileURL=…, same origin as the artifact) — nothing is fetched
 * from the internet. writeBundle runs before closeBundle, so the copy is precompressed too. */
function speedscope(): Plugin {
  const release = fileURLToPath(new URL("./node_modules/speedscope/dist/release", import.meta.url));
  return {
    name: "moe-hub-speedscope",
    apply: "build",
    writeBundle() {
      if (!existsSync(join(release, "index.html"))) throw new Error(`speedscope's release bundle is missing (${release}): run npm ci`);
      cpSync(release, "dist/speedscope", { recursive: true });
    },
  };
}

// Django serves dist/: index.html for every dashboard route (hub/web.py) and the hashed
// assets under /assets/ (WhiteNoise). Client routes must never start with /api or /static.
export default defineConfig({
  base: "/",
  plugins: [react(), speedscope(), precompress()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    manifest: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a hub on :8077 (HUB_URL overrides).
    proxy: { "/api": process.env.HUB_URL ?? "http://127.0.0.1:8077" },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
