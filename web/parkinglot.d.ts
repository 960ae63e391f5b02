// Type declarations of Parkinglot's web runtime (parkinglot.js).

/** A duration: milliseconds, or a Go duration string such as "30s" or "5m". */
export type Duration = number | string;
/** A time: a Date, milliseconds since 1970, or an RFC 3339 string. */
export type Time = Date | number | string;

export type State = 'parked' | 'running' | 'succeeded' | 'failed' | 'expired' | 'rejected' | 'cancelled' | 'timed_out';

/** HTTP API v1's error codes; a permit that never started is expired or cancelled. */
export type ErrorCode =
  | 'invalid_request' | 'payload_too_large' | 'not_found' | 'pool_not_found' | 'pool_full'
  | 'key_conflict' | 'lease_lost' | 'invalid_state' | 'internal' | 'expired' | 'cancelled';

export interface PoolConfig {
  /** [A-Za-z0-9_.-], at most 64 characters. */
  name: string;
  /** Hard limit of tasks running at once (across every tab with shared: true). */
  capacity: number;
  /** Parked depth; past it submissions are rejected (pool_full). Default 1000. */
  maxParked?: number;
  /** How long a task may stay parked when it names neither maxWait nor deadline. Default "10m". */
  defaultMaxWait?: Duration;
  /** Lease length when the task names none. Default "5m". */
  runTimeout?: Duration;
}

export interface Pool {
  name: string;
  /** How started tasks reach the ones who run them; the web runtime's pools are permit pools. */
  executor: 'permit' | 'pull';
  capacity: number;
  running: number;
  parked: number;
  maxParked: number;
}

export interface Task<P = unknown, R = unknown> {
  id: string;
  key?: string;
  tenant: string;
  pool: string;
  recipient: string;
  state: State;
  payload?: P;
  submittedAt: string;
  deadline: string;
  startedAt?: string;
  /** Set while the task runs. */
  lease?: string;
  leaseExpiresAt?: string;
  endedAt?: string;
  result?: R;
  error?: string;
}

export interface Message<R = unknown, P = unknown> {
  cursor: string;
  taskId: string;
  tenant: string;
  pool: string;
  type: 'started' | 'succeeded' | 'failed' | 'expired' | 'rejected' | 'cancelled' | 'timed_out';
  /** On started: what the task needs to run. */
  key?: string;
  payload?: P;
  deadline?: string;
  lease?: string;
  leaseExpiresAt?: string;
  result?: R;
  error?: string;
  at: string;
}

export interface MailboxPage {
  messages: Message[];
  next: string;
}

export interface Event {
  at: string;
  tenant: string;
  pool: string;
  taskId: string;
  type: 'submit' | 'start' | 'complete' | 'cancel' | 'expire' | 'timeout';
  from: State | '';
  to: State;
  detail?: string;
}

export interface AuditPage {
  events: Event[];
  /** Empty on the last page. */
  next: string;
}

export interface StartOptions {
  pools: PoolConfig[];
  /** Run in a SharedWorker: one scheduler, one capacity, for every tab of the origin. */
  shared?: boolean;
  /** Keep the mailbox and audit trail in IndexedDB (default true where IndexedDB exists). */
  persist?: boolean;
  /** What a new worker restores from IndexedDB: mailbox messages and audit events younger than these (default 7 and 30 days; older ones are deleted then). */
  retention?: { mailbox?: Duration; audit?: Duration };
  /** Milliseconds between sweeps (expiry, lease reclaim). Default 250. The first start of a shared worker sets it. */
  sweepInterval?: number;
  /** Where worker.js is; default: beside parkinglot.js. */
  workerURL?: string | URL;
}

export interface SubmitOptions {
  /** How long the task may stay parked; or give deadline. */
  maxWait?: Duration;
  deadline?: Time;
  /** Idempotency key: the same key and body replays the task; another body is key_conflict. */
  key?: string;
  /** Whose mailbox gets the started message and the outcome. Default: the tenant, "default". */
  recipient?: string;
  /** Lease length. Default: the pool's. */
  runTimeout?: Duration;
}

export interface AcquireOptions extends SubmitOptions {
  payload?: unknown;
  /** Heartbeat the lease from this page while the permit is held (default true). */
  heartbeat?: boolean;
}

export interface AuditQuery {
  from?: Time;
  to?: Time;
  pool?: string;
  task?: string;
  after?: string;
  limit?: number;
}

export interface BenchResult {
  n: number;
  ms: number;
  perSecond: number;
  wakes?: number;
  p50?: number;
  p95?: number;
  p99?: number;
}

export declare class ParkinglotError extends Error {
  code: ErrorCode;
  /** The option or field that is wrong, when one is. */
  field?: string;
  /** The task a refusal concerns (the rejected one for pool_full). */
  task?: Task;
}

export declare class Permit<P = unknown, R = unknown> {
  readonly task: Task<P, R>;
  readonly id: string;
  readonly lease: string;
  /** Complete as succeeded with result; frees the slot. */
  release(result?: R): Promise<Task<P, R>>;
  /** Complete as failed with error; frees the slot. */
  fail(error: unknown): Promise<Task<P, R>>;
  heartbeat(extend?: Duration): Promise<string>;
}

export declare class Parkinglot {
  static start(options: StartOptions): Promise<Parkinglot>;
  /** Whether the worker keeps the mailbox and audit trail in IndexedDB (false without IndexedDB, with persist: false, or when a dedicated worker of another tab is the writer). */
  readonly persistent: boolean;
  putPools(pools: PoolConfig[]): Promise<Pool[]>;
  submit<P = unknown>(pool: string, payload?: P, options?: SubmitOptions): Promise<Task<P>>;
  acquire<P = unknown>(pool: string, options?: AcquireOptions): Promise<Permit<P>>;
  complete(id: string, body: { lease: string; status?: 'succeeded' | 'failed'; result?: unknown; error?: string }): Promise<Task>;
  heartbeat(id: string, body: { lease: string; extend?: Duration }): Promise<string>;
  cancel(id: string): Promise<Task>;
  task(id: string): Promise<Task>;
  mailbox(recipient: string, options?: { after?: string; ack?: boolean; limit?: number }): AsyncGenerator<Message, never, undefined>;
  mailboxPage(recipient: string, options?: { after?: string; limit?: number; wait?: number }): Promise<MailboxPage>;
  ack(recipient: string, upTo: string): Promise<void>;
  audit(query?: AuditQuery): Promise<AuditPage>;
  pools(): Promise<Pool[]>;
  /** Resolves when what every call answered so far wrote is in IndexedDB. */
  flush(): Promise<void>;
  bench(mode: 'lifecycle' | 'wake', n: number): Promise<BenchResult>;
  close(): void;
}
