// Error helpers with no dependencies, for code that must load before the rest (the CLI's entry point).

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
