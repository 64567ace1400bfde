import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LoggerConfig {
  level: string;
}

/**
 * The process logger. Secrets never reach it: every field that could hold one is redacted
 * here as a last line of defence, though call sites must not pass them in the first place.
 */
export function createLogger(config: LoggerConfig, destination?: pino.DestinationStream): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { pid: process.pid },
    redact: {
      paths: [
        'streamKey',
        '*.streamKey',
        'apiKey',
        '*.apiKey',
        'token',
        '*.token',
        'req.headers.authorization',
        'secret',
        '*.secret',
        'secretAccessKey',
        '*.secretAccessKey',
        '*.*.secretAccessKey',
      ],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A logger that writes nothing, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
