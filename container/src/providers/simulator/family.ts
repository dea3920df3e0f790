import { z } from 'zod';
import { familyModelSchema } from '../catalogue';
import type { BuiltFamily, Provider, ProviderFamily } from '../types';
import { SimulatorProvider } from './simulator-provider';

export const simulatorSettingsSchema = z
  .object({
    /** Time to first token. @default 150 */
    ttftMs: z.number().int().min(0).default(150),
    /** Output speed. @default 80 */
    tokensPerSecond: z.number().positive().default(80),
  })
  .strict();

/** The built-in model: deterministic, clearly labelled text, realistic timing, no upstream. */
export const simulatorModelSchema = familyModelSchema('simulator', {
  simulator: simulatorSettingsSchema.optional(),
});

export type SimulatorModelConfig = z.infer<typeof simulatorModelSchema>;

function build(models: readonly SimulatorModelConfig[]): BuiltFamily {
  const providers = new Map<string, Provider>();
  for (const m of models)
    providers.set(
      m.id,
      new SimulatorProvider({ ...m.simulator, ...(m.dimensions ? { dimensions: m.dimensions } : {}) }),
    );
  // Nothing to reach: the simulator is always ready.
  return { providers, checks: [] };
}

export const simulatorFamily = {
  name: 'simulator' as const,
  schema: simulatorModelSchema,
  build,
} satisfies ProviderFamily<typeof simulatorModelSchema>;
