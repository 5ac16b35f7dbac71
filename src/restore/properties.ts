import {
  creationProperties,
  describeCreation,
  propertyNames,
  selectProperties,
  type CreationProperties,
  type DatabaseProperties,
} from '../catalog/properties.js';
import type { DatabaseEngine, PropertyStatement } from '../engines/engine.js';
import { DbBackupError, SafetyError, errorMessage } from '../errors.js';

/** The properties a backup recorded for its database (metadata, or a cluster manifest). */
export interface RecordedProperties {
  properties: DatabaseProperties;
  /** Recorded in a form that cannot be applied (an older cluster manifest's summary): named, not guessed. */
  unreadable: string[];
}

/** What a restore does about the database's own properties: decided before anything changes. */
export interface PropertyPlan {
  /** Given to CREATE DATABASE; undefined: the server's defaults. */
  create: CreationProperties | undefined;
  /** Run once the data is in, in this order. */
  statements: PropertyStatement[];
  /** For the plan: what will be applied, in order. */
  apply: string[];
  /** For the plan: what will not be applied, and why. */
  leave: string[];
  warnings: string[];
}

export interface PropertyChoices {
  /** The restore creates the database (--create for a missing one, or --clean). */
  creates: boolean;
  /** --no-owner: the owner and privileges stay as a new database of the restoring user has them. */
  noOwner: boolean;
  /** --no-db-properties: everything else stays as the server's defaults give it. */
  noDbProperties: boolean;
}

export function recordedInMetadata(p: DatabaseProperties | undefined): RecordedProperties | undefined {
  return p ? { properties: p, unreadable: [] } : undefined;
}

/**
 * Decide which recorded properties this restore applies, check that the target can take them, and
 * describe it for the plan. Roles or tablespaces missing on the target are warnings naming what
 * will not be applied; an encoding, locale or collation the target lacks stops the restore here,
 * before anything is changed.
 */
export async function planDatabaseProperties(
  engine: DatabaseEngine,
  target: string,
  recorded: RecordedProperties | undefined,
  o: PropertyChoices,
): Promise<PropertyPlan> {
  const plan: PropertyPlan = { create: undefined, statements: [], apply: [], leave: [], warnings: [] };
  if (!o.creates) {
    plan.leave.push(
      `all of them: restoring into the existing database "${target}" leaves its own properties (owner, privileges, encoding, settings…) as they are`,
    );
    return plan;
  }
  if (!recorded) {
    plan.leave.push(
      "all of them: none are recorded in this backup (made by an older dbbackup or another tool); the database gets the server's defaults",
    );
    return plan;
  }
  const all = recorded.properties;
  const chosen = selectProperties(all, { owner: !o.noOwner, other: !o.noDbProperties });
  if (o.noOwner && (all.owner !== undefined || all.acl !== undefined))
    plan.leave.push(
      'owner and privileges (--no-owner): the restoring user owns the database, with default privileges',
    );
  const others = propertyNames(selectProperties(all, { owner: false, other: true }));
  if (o.noDbProperties && others.length)
    plan.leave.push(`${others.join(', ')} (--no-db-properties): the server's defaults`);

  const create = creationProperties(chosen);
  if (create.tablespace) {
    const [missing] = await engine.missingGlobals('tablespace', [create.tablespace]);
    if (missing) {
      plan.warnings.push(
        `tablespace "${missing}" does not exist on ${engine.endpoint}: the database is created in the default tablespace`,
      );
      plan.leave.push(`tablespace ${missing} (does not exist here)`);
      delete create.tablespace;
    }
  }
  const problems = await engine.creationProblems(create);
  if (problems.length) {
    throw new SafetyError(
      `Database "${target}" cannot be created as it was backed up on ${engine.endpoint}: ${problems.join('; ')}`,
      {
        hint: "Nothing was changed. Add --no-db-properties to create it with this server's defaults, or create it yourself and restore into it without --create/--clean.",
      },
    );
  }
  plan.create = create;
  const creation = describeCreation(create);
  if (creation.length) plan.apply.push(`when creating the database: ${creation.join(', ')}`);

  const statements = engine.propertyStatements(target, chosen);
  const roles = [...new Set(statements.flatMap((s) => s.roles))];
  const missing = new Set(await engine.missingGlobals('role', roles));
  for (const s of statements) {
    const absent = s.roles.filter((r) => missing.has(r));
    if (!absent.length) {
      plan.statements.push(s);
      plan.apply.push(s.label);
      continue;
    }
    const names = absent.map((r) => `"${r}"`).join(', ');
    plan.warnings.push(
      `role ${names} does not exist on ${engine.endpoint}: database property "${s.label}" will not be applied`,
    );
    plan.leave.push(`${s.label} (role ${names} does not exist here)`);
  }
  if (chosen.withheldSettings?.length) {
    const names = chosen.withheldSettings.join(', ');
    plan.warnings.push(
      `database settings ${names} were not recorded (the backup is encrypted and they may hold secrets): set them by hand`,
    );
    plan.leave.push(`settings ${names} (not recorded: the backup is encrypted)`);
  }
  for (const u of recorded.unreadable) {
    plan.warnings.push(
      `database ${u} recorded by an older dbbackup cannot be applied reliably: set them by hand`,
    );
    plan.leave.push(`${u} (recorded by an older dbbackup; set by hand)`);
  }
  return plan;
}

/**
 * Owner, privileges, settings and comment, once the restore tool has succeeded. Each statement is
 * tried; the ones that fail are reported together. The data is complete by then, so the database
 * is kept, and the error says so.
 */
export async function applyDatabaseProperties(
  engine: DatabaseEngine,
  target: string,
  plan: PropertyPlan,
): Promise<void> {
  const failures: string[] = [];
  for (const statement of plan.statements) {
    try {
      await engine.applyProperty(statement);
    } catch (err) {
      failures.push(`${statement.label}: ${errorMessage(err)}`);
    }
  }
  if (!failures.length) return;
  throw new DbBackupError(
    `"${target}" was restored, but ${failures.length} of its ${plan.statements.length} database properties could not be applied`,
    {
      details: failures,
      hint: 'The data is complete and the database was kept. Apply the properties listed by hand, or restore again with --no-db-properties (settings, comment…) or --no-owner (owner and privileges).',
    },
  );
}
