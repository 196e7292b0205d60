// The state store's public surface: the interface, its errors, the factory and the migration.
export * from './store.ts';
export { createStore } from './create.ts';
export { migrateStore, type MigrateProgress, type MigrateResult } from './migrate.ts';
export { SqliteStore } from './sqlite.ts';
export { RedisStore } from './redis.ts';
