import { createHash } from 'node:crypto';
import { BadRequestError } from '../../errors';

/**
 * Bedrock takes tool names and tool-use ids of 1-64 characters from `[a-zA-Z0-9_-]`; OpenAI
 * clients (MCP tool names such as `github.search_code`, ids minted by other providers) send
 * others. A name that fits is sent as it is; one that does not becomes its legal characters,
 * cut to fit, plus 8 hex digits of its SHA-256, so the same name maps the same way in every
 * request (a later turn's history must name the tools as the earlier answer did).
 */
const LEGAL = /^[a-zA-Z0-9_-]{1,64}$/;
const HASH_CHARS = 8;

/** The Bedrock-legal form of a tool name or tool-use id (itself when it is legal). */
export function bedrockIdentifier(name: string): string {
  if (LEGAL.test(name)) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, HASH_CHARS);
  const stem = name.replace(/[^a-zA-Z0-9_-]+/g, '_').slice(0, 64 - HASH_CHARS - 1);
  return `${stem || 'tool'}_${hash}`;
}

/** The tool names of one request, both ways. */
export class ToolNames {
  private readonly toBedrock = new Map<string, string>();
  private readonly toClient = new Map<string, string>();

  /**
   * The name to send for `name`; `param` names the field in the 400 when two names would
   * collide on the way (a legal name equal to another's mapped form).
   */
  add(name: string, param: string): string {
    const known = this.toBedrock.get(name);
    if (known !== undefined) return known;
    const mapped = bedrockIdentifier(name);
    const taken = this.toClient.get(mapped);
    if (taken !== undefined && taken !== name) {
      throw new BadRequestError(
        `The tool names '${taken}' and '${name}' both map to '${mapped}' for Bedrock (1-64 characters of a-z, A-Z, 0-9, _ and -); rename one.`,
        { param },
      );
    }
    this.toBedrock.set(name, mapped);
    this.toClient.set(mapped, name);
    return mapped;
  }

  /** The name the client knows for a name Bedrock answered with. */
  original(bedrockName: string): string {
    return this.toClient.get(bedrockName) ?? bedrockName;
  }

  get size(): number {
    return this.toBedrock.size;
  }
}
