/**
 * A DynamoDB conditional write that was refused (`ConditionalCheckFailedException`). By name,
 * not `instanceof`: the same error may come from another copy of the SDK or another realm.
 */
export function isConditionFailure(err: unknown): boolean {
  return (err as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';
}
