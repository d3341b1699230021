import type { InspectorTarget } from "./Inspector";

export default function GraphTab({ target }: { target: InspectorTarget }) {
  return <p>Computation graph of {target.ns}/{target.name}@{target.sha}</p>;
}
