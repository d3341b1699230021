import { useEffect, useRef, type ReactNode } from "react";

/** A modal on the native <dialog>: focus moves in and is trapped by the browser, Escape
 * closes it, and focus returns to the opener. */
export function Dialog({ open, onClose, title, children, footer, labelId }: {
  open: boolean;
  onClose: () => void;
  title: string;
  children: ReactNode;
  footer?: ReactNode;
  labelId: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={labelId} onClose={onClose} onCancel={(e) => { e.preventDefault(); onClose(); }}>
      <div className="dialog-head">
        <h2 id={labelId}>{title}</h2>
        <button type="button" className="small" onClick={onClose} aria-label="Close dialog">✕</button>
      </div>
      <div className="dialog-body">{open && children}</div>
      {footer && <div className="dialog-foot">{footer}</div>}
    </dialog>
  );
}
