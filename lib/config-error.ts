/** Deployment config errors, shared by the config and the grants seam (no imports). */

/** One problem with the config: the dotted field path and what is wrong with it. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/** A bad config. The message names every bad field, one per line. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], heading = 'Invalid Tollgate deployment config') {
    const lines = issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`);
    super(`${heading} (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}
