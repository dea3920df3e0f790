/**
 * Submitting a job: the same validation, routing and admission (limits and quotas) as the
 * synchronous path, then a job row and an SQS message. Idempotent per Idempotency-Key.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { canonicalJson } from '../cache/response-cache';
import type { ChatService } from '../chat/chat-service';
import type { ServiceConfig } from '../config/service-config';
import { METRICS } from '../contract';
import { ApiError, ServiceUnavailableError } from '../errors';
import type { Principal } from '../keys/key-store';
import type { Telemetry } from '../telemetry/telemetry';
import type { ChatRequest } from '../wire/chat';
import { type JobRow, type JobStore, MAX_STORED_REQUEST_BYTES, packJson } from './job-store';
import type { QueueDepthGate } from './queue';
import { encodeJobMessage } from './schema';

/** Idempotency keys: printable ASCII, like the IETF draft's examples (UUIDs, opaque tokens). */
const IDEMPOTENCY_KEY_RE = /^[\x20-\x7e]{1,255}$/;

export interface JobProducerOptions {
  config: ServiceConfig;
  /** Admission goes through the same metered chat call as the synchronous path. */
  chat: ChatService;
  telemetry: Telemetry;
  store: JobStore;
  sqs: SQSClient;
  queueUrl: string;
  gate: QueueDepthGate;
}

/** What a submission answers with. */
export interface Submission {
  job: JobRow;
  /** True when an earlier submission with the same Idempotency-Key created the job. */
  replayed: boolean;
  /** Rate-limit headers from admission (none on a replay: nothing was admitted). */
  headers: Record<string, string>;
}

/** The job id for an owner's Idempotency-Key: the same key always names the same job. */
export function idempotentJobId(owner: string, key: string): string {
  return `job_${createHash('sha256').update(`${owner}\0${key}`).digest('hex').slice(0, 32)}`;
}

export function newJobId(): string {
  return `job_${randomBytes(16).toString('hex')}`;
}

/** Validates an Idempotency-Key header value (undefined when absent). */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || !IDEMPOTENCY_KEY_RE.test(v)) {
    throw new ApiError(
      400,
      'The Idempotency-Key header must be 1 to 255 printable ASCII characters.',
      { type: 'invalid_request_error', code: 'invalid_idempotency_key' },
      { param: 'Idempotency-Key' },
    );
  }
  return v;
}

/** Creates jobs: admission, row, message; cleans up after itself when SQS fails. */
export class JobProducer {
  private readonly ttlSeconds: number;

  constructor(private readonly o: JobProducerOptions) {
    this.ttlSeconds = Math.round(o.config.jobs.ttlDays * 86_400);
  }

  /**
   * Submit a validated request as `principal`. With an idempotency key, a second submission
   * (same owner, same key, same body) returns the first job and admits nothing.
   */
  async submit(
    principal: Principal,
    body: ChatRequest,
    opts: { idempotencyKey?: string | undefined } = {},
  ): Promise<Submission> {
    const { store } = this.o;
    const requestJson = JSON.stringify(body);
    // The same request with its fields in another order is the same request.
    const requestHash = createHash('sha256').update(canonicalJson(body)).digest('hex');
    // Rows written before the canonical form (up to jobs.ttlDays old) hold the hash of the body
    // as sent; a retry of one of those must still be recognised.
    const fingerprints = (): string[] => [
      requestHash,
      createHash('sha256').update(requestJson).digest('hex'),
    ];
    const key = opts.idempotencyKey;
    const jobId = key !== undefined ? idempotentJobId(principal.owner, key) : newJobId();
    if (key !== undefined) {
      // Before admission: a replay must not spend the caller's rate limit again.
      const existing = await store.get(jobId);
      if (existing) return replay(existing, principal, fingerprints());
    }
    await this.o.gate.check();
    // Validation, routing, caps and the reservation estimate are the synchronous path's; the
    // call only admits here, and hands its reservation to the job (the worker reconciles it).
    const call = this.o.chat.begin(principal, body, {
      requestId: jobId,
      signal: NEVER_ABORTED,
      source: 'async',
      cacheControl: 'no-store',
    });
    const packed = packJson(requestJson);
    if (packed.bytes > MAX_STORED_REQUEST_BYTES) {
      throw new ApiError(
        413,
        `This request is too large for an async job (${packed.bytes} bytes compressed; the limit is ${MAX_STORED_REQUEST_BYTES}). Use /v1/chat/completions.`,
        { type: 'invalid_request_error', code: 'request_too_large' },
      );
    }
    await call.admit();
    const reservation = call.reservation;
    const now = Date.now();
    const job: JobRow = {
      jobId,
      owner: principal.owner,
      keyId: principal.keyId,
      principal,
      model: call.modelId,
      status: 'queued',
      ...(packed.text !== undefined ? { request: packed.text } : { requestGz: packed.gz }),
      requestHash,
      ...(reservation ? { reservation } : {}),
      createdAt: now,
      expiresAt: Math.floor(now / 1000) + this.ttlSeconds,
    };
    // Row and message are written concurrently (one round trip of latency, not two). A worker
    // that sees the message before the row retries it until the row shows up (see processor).
    const [put, send] = await Promise.allSettled([
      store.create(job),
      this.o.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.o.queueUrl,
          MessageBody: encodeJobMessage(jobId, requestJson),
        }),
      ),
    ]);
    if (put.status === 'rejected') {
      // A message that went out anyway names no row: the worker drops it once it is old.
      call.abandon();
      this.o.telemetry.logger.error('job row write failed', { jobId, error: errorText(put.reason) });
      throw new ServiceUnavailableError(
        'The job store is unavailable; the job was not created. Retry shortly.',
        {
          code: 'job_store_unavailable',
          retryAfterSeconds: 2,
        },
      );
    }
    if (!put.value) {
      // Two submissions with one key raced and the other wrote first: answer with its job (the
      // extra message is harmless: the worker runs a job once, whatever it receives).
      call.abandon();
      const existing = await store.get(jobId);
      if (existing) return replay(existing, principal, fingerprints());
      throw new ServiceUnavailableError('The job changed while it was being created; retry.', {
        code: 'job_conflict',
        retryAfterSeconds: 1,
      });
    }
    if (send.status === 'rejected') {
      call.abandon();
      await this.removeUnsent(jobId);
      this.o.telemetry.logger.error('job queue send failed', { jobId, error: errorText(send.reason) });
      throw new ServiceUnavailableError(
        'The job queue is unavailable; the job was not created. Retry shortly.',
        {
          code: 'queue_unavailable',
          retryAfterSeconds: 2,
        },
      );
    }
    call.handOff();
    this.o.gate.noteSent();
    this.o.telemetry.increment(METRICS.jobsSubmitted);
    const { 'x-tollgate-cache': _cache, ...headers } = call.headers();
    return { job, replayed: false, headers };
  }

  /** A job that will never run must not stay `queued`: delete it, or at worst say so loudly. */
  private async removeUnsent(jobId: string): Promise<void> {
    try {
      await this.o.store.deleteUnsent(jobId);
    } catch (err) {
      // DynamoDB failing too: the row outlives the request until its TTL. A retry with the same
      // Idempotency-Key would find it, so name it for the operator.
      this.o.telemetry.logger.error('could not remove a job row whose message was never sent', {
        jobId,
        error: (err as Error).message,
      });
    }
  }
}

/** The submission itself cannot be cancelled half-way (its writes are bounded by the SDKs). */
const NEVER_ABORTED = new AbortController().signal;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function replay(existing: JobRow, principal: Principal, fingerprints: readonly string[]): Submission {
  if (existing.owner !== principal.owner || !fingerprints.includes(existing.requestHash)) {
    // IETF idempotency-key draft: reuse with another payload is 422 (not 409, which the
    // openai SDK would retry in vain).
    throw new ApiError(
      422,
      'This Idempotency-Key was already used with a different request body. Use a new key for a new request.',
      { type: 'invalid_request_error', code: 'idempotency_key_reused' },
      { param: 'Idempotency-Key' },
    );
  }
  return { job: existing, replayed: true, headers: {} };
}
