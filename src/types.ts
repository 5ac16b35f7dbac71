/**
 * Names shared by every layer: the engines, the catalog and the pipeline all speak of an engine
 * family, a dump format, a compression algorithm and a program to run. They live here, at the
 * bottom, so that none of those layers has to import another just to name one of these (the
 * engines once imported the catalog for them, and the catalog the pipeline, and the pipeline the
 * engines: an import cycle).
 */

export type Engine = 'postgres' | 'mysql' | 'mariadb';

export type DumpFormat = 'custom' | 'plain';

export type CompressionAlgorithm = 'none' | 'gzip' | 'zstd';

/** A program to run (never through a shell) with the environment that carries its credentials. */
export interface ToolCommand {
  /** Absolute path or bare name of the executable. */
  file: string;
  args: string[];
  /** Complete environment for the child; secrets travel here or in a 0600 file, never in args. */
  env: NodeJS.ProcessEnv;
  /** Name shown to users in errors and metadata, e.g. `pg_dump`. */
  name: string;
}
