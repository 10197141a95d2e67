// Structured logging: JSON lines in a cluster (what log pipelines parse), readable text on a terminal.
import winston from "winston";

export type Logger = winston.Logger;
export type LogFormat = "json" | "text" | "auto";
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export function createLogger(
  options: { level?: string; format?: LogFormat; stream?: NodeJS.WritableStream } = {},
): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? "info";
  if (!isLogLevel(level)) throw new Error(`invalid log level "${level}": use one of ${LOG_LEVELS.join(", ")}`);
  const stream = options.stream ?? process.stderr;
  const tty = (stream as NodeJS.WriteStream).isTTY === true;
  const format = options.format ?? (process.env.LOG_FORMAT as LogFormat | undefined) ?? "auto";
  const text = format === "text" || (format === "auto" && tty);
  return winston.createLogger({
    level,
    format: text
      ? winston.format.combine(
          winston.format.timestamp({ format: "HH:mm:ss.SSS" }),
          winston.format.printf((info) => {
            const { timestamp, level: lvl, message, ...rest } = info;
            const fields = Object.entries(rest)
              .filter(([k]) => typeof k === "string")
              .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
              .join(" ");
            return `${String(timestamp)} ${lvl.toUpperCase().padEnd(5)} ${String(message)}${fields ? " " + fields : ""}`;
          }),
        )
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.errors({ stack: true }),
          winston.format.json(),
        ),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that drops everything, for library code used without one. */
export const silentLogger: Logger = winston.createLogger({
  silent: true,
  transports: [new winston.transports.Console()],
});

export { errorMessage } from "./errors.js";
