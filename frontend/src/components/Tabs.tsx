import { useRef, type KeyboardEvent } from "react";

/** WAI-ARIA tabs: arrow keys move between tabs; the panel is rendered by the caller with
 * id `${id}-panel` and aria-labelledby `${id}-tab-${value}`. */
export function Tabs<T extends string>({ id, tabs, value, onChange, label }: {
  id: string;
  tabs: { value: T; label: string; disabled?: boolean }[];
  value: T;
  onChange: (v: T) => void;
  label: string;
}) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const enabled = tabs.filter((t) => !t.disabled);
  const onKey = (e: KeyboardEvent) => {
    const i = enabled.findIndex((t) => t.value === value);
    let next = -1;
    if (e.key === "ArrowRight") next = (i + 1) % enabled.length;
    else if (e.key === "ArrowLeft") next = (i - 1 + enabled.length) % enabled.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = enabled.length - 1;
    if (next < 0) return;
    e.preventDefault();
    onChange(enabled[next].value);
    refs.current[tabs.indexOf(enabled[next])]?.focus();
  };
  return (
    <div role="tablist" aria-label={label} onKeyDown={onKey}>
      {tabs.map((t, i) => (
        <button
          key={t.value}
          ref={(el) => { refs.current[i] = el; }}
          type="button"
          role="tab"
          id={`${id}-tab-${t.value}`}
          aria-selected={t.value === value}
          aria-controls={`${id}-panel`}
          tabIndex={t.value === value ? 0 : -1}
          disabled={t.disabled}
          onClick={() => onChange(t.value)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}
