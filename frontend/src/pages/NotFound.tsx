import { Link } from "react-router";
import { useTitle } from "../lib/useTitle";

export function NotFoundPage() {
  useTitle("Not found");
  return (
    <div className="state">
      <h1>Page not found</h1>
      <p>
        Nothing lives at this address. Go to <Link to="/projects">projects</Link> or <Link to="/models">models</Link>.
      </p>
    </div>
  );
}
