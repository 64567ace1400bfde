// The package ships no typings: just enough for the tests that parse /metrics.
declare module 'parse-prometheus-text-format' {
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
