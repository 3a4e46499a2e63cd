import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/observability/logger.js";
import { MemorySessionStore } from "../../src/sessions/memoryStore.js";
import { RedisSessionStore } from "../../src/sessions/redisStore.js";
import { SqliteSessionStore } from "../../src/sessions/sqliteStore.js";
import type { SessionStore } from "../../src/sessions/types.js";
import { redisAvailable, startRedis } from "../support/redis.js";

export interface StoreLimits {
  maxSessions: number;
  idleTimeoutSec: number;
}

/** Opens stores of one kind for a suite; close() stops them all and removes what they left. */
export interface StoreFactory {
  /** A started store with no sessions and no prompts. */
  open(limits?: Partial<StoreLimits>): Promise<SessionStore>;
  /** A second started store on the same data, as another gateway process would open it. */
  twin(store: SessionStore): Promise<SessionStore>;
  close(): Promise<void>;
}

export interface StoreKind {
  name: string;
  /** A reason to skip, or false. CI installs redis-server, so there it is never skipped. */
  skip: string | false;
  setUp(): Promise<StoreFactory>;
}

const DEFAULT_LIMITS: StoreLimits = { maxSessions: 100, idleTimeoutSec: 3600 };

/**
 * Builds a factory from how to open a store on some shared data (`place`): every `open` gets a
 * fresh place, every `twin` the place of the store it twins.
 */
function factory<Place>(
  freshPlace: () => Place,
  openAt: (place: Place, limits: StoreLimits) => SessionStore,
  cleanUp: () => Promise<void> = async () => {},
): StoreFactory {
  const opened: SessionStore[] = [];
  const openings = new Map<SessionStore, { place: Place; limits: StoreLimits }>();
  const start = async (place: Place, limits: StoreLimits) => {
    const store = openAt(place, limits);
    await store.start();
    opened.push(store);
    openings.set(store, { place, limits });
    return store;
  };
  return {
    open: (limits = {}) => start(freshPlace(), { ...DEFAULT_LIMITS, ...limits }),
    twin: (store) => {
      const { place, limits } = openings.get(store)!;
      return start(place, limits);
    },
    close: async () => {
      for (const store of opened) await store.stop();
      await cleanUp();
    },
  };
}

export const STORE_KINDS: StoreKind[] = [
  {
    name: "memory",
    skip: false,
    // One process's memory cannot be shared: its twin is itself.
    setUp: async () => {
      const base = factory(
        () => undefined,
        (_place, limits) => new MemorySessionStore(limits),
      );
      return { ...base, twin: async (store) => store };
    },
  },
  {
    name: "sqlite",
    skip: false,
    setUp: async () => {
      const dir = mkdtempSync(join(tmpdir(), "llmqtt-sqlite-"));
      let files = 0;
      return factory(
        () => join(dir, `sessions-${++files}.db`),
        (path, limits) => new SqliteSessionStore({ ...limits, path }),
        async () => rmSync(dir, { recursive: true, force: true }),
      );
    },
  },
  {
    name: "redis",
    skip: redisAvailable() || process.env.CI === "true" ? false : "redis-server is not installed",
    setUp: async () => {
      const redis = await startRedis();
      const logger = createLogger("silent");
      let prefixes = 0;
      return factory(
        () => `test${++prefixes}:`,
        (keyPrefix, limits) =>
          new RedisSessionStore({ ...limits, redis: { url: redis.url, keyPrefix }, logger }),
        () => redis.stop(),
      );
    },
  },
];
