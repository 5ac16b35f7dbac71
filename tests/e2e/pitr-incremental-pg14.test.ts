/**
 * Incremental and differential base backups on PostgreSQL 14 (npm): the older
 * pg_start_backup/pg_stop_backup names, on a chain whose full is pg_basebackup's (the Debian 15
 * client backs up a 14 server).
 */
import { embeddedChainSuite } from './incremental-embedded.js';

embeddedChainSuite({ major: 14, fullArgs: [] });
