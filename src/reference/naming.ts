/**
 * How the reference tool names its backups. A dbbackup backup of a database called `db_…` could
 * look the same as a reference single backup, so such a name proves nothing on its own.
 */

/** The reference tool's single backups: `db_<db>_<ts>.dump`, `db_<db>_<ts>.sql.gz`, `sample_<db>_…_<ts>.sql`. */
const REFERENCE_NAME = /^(?:db_.+_\d{8}_\d{6}\.(?:dump|dump\.gz|sql\.gz)|sample_.+_\d{8}_\d{6}\.sql)$/;

/** A single backup's data file as the reference tool names it. */
export function isReferenceName(key: string): boolean {
  return REFERENCE_NAME.test(key.slice(key.lastIndexOf('/') + 1));
}

/**
 * The reference tool's cluster archive by its name, `cluster_<ts>.tar.gz`: listed even without its
 * `.meta.json` (as incomplete). With the sidecar, any `<name>.tar.gz` is listed through it.
 */
export function isReferenceClusterName(key: string): boolean {
  return /^cluster_[^/]*\.tar\.gz$/.test(key);
}
