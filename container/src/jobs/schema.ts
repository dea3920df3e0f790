/**
 * The SQS message between the producer (the API) and the worker, with one zod schema both
 * sides use, so a message one side writes is exactly what the other accepts.
 */
import { z } from 'zod';

/** SQS's largest message (the body counts; we send no message attributes). */
export const SQS_MAX_MESSAGE_BYTES = 256 * 1024;

/** `job_` + 32 hex characters (random, or derived from the owner and Idempotency-Key). */
export const JOB_ID_RE = /^job_[a-f0-9]{32}$/;

/** Current message version; a worker refuses versions it does not know (they go to the DLQ). */
export const JOB_MESSAGE_VERSION = 1;

export const jobMessageSchema = z.object({
  v: z.literal(JOB_MESSAGE_VERSION),
  jobId: z.string().regex(JOB_ID_RE),
  /**
   * The validated chat request, when it fits in one SQS message; otherwise only the job row
   * holds it. The worker validates it again with the same validator as the API.
   */
  request: z.record(z.string(), z.unknown()).optional(),
});

/** One job message as it travels on the queue. */
export type JobMessage = z.infer<typeof jobMessageSchema>;

/** A message the worker cannot read: retrying cannot help, so it is left for the DLQ. */
export class PoisonMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoisonMessageError';
  }
}

/**
 * The message body for a job: the request inline when the whole message fits in SQS, else only
 * the id (the worker then reads the request from the job row). `requestJson` is the request as
 * JSON text (already serialized for the row; not serialized again here).
 */
export function encodeJobMessage(jobId: string, requestJson: string): string {
  if (!JOB_ID_RE.test(jobId)) throw new Error(`not a job id: ${jobId}`);
  const head = `{"v":${JOB_MESSAGE_VERSION},"jobId":"${jobId}"`;
  const full = `${head},"request":${requestJson}}`;
  return Buffer.byteLength(full) <= SQS_MAX_MESSAGE_BYTES ? full : `${head}}`;
}

/** Parse a message body; anything else than a valid message is a {@link PoisonMessageError}. */
export function parseJobMessage(body: string): JobMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new PoisonMessageError('job message is not JSON');
  }
  const parsed = jobMessageSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new PoisonMessageError(`invalid job message: ${issues.join('; ')}`);
  }
  return parsed.data;
}
