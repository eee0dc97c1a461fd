/**
 * Builds the smallest params that pass an action's fastest-validator schema, so tests that walk
 * every registered action (tenant guard, fuzzing) reach the code behind validation. Fails loudly
 * on a rule it does not know, so a new kind of param is taught here instead of silently skipped.
 */

type RawRule = unknown;

interface Rule {
  type: string;
  optional: boolean;
  raw: Record<string, unknown>;
}

/** Normalises a rule: shorthand string ("string|optional"), object, or list of alternatives (first wins). */
export function ruleOf(raw: RawRule): Rule {
  if (Array.isArray(raw)) return ruleOf(raw[0]);
  if (typeof raw === "string") {
    const [type, ...flags] = raw.split("|");
    return { type, optional: flags.some(f => f === "optional" || f === "optional:true"), raw: { type } };
  }
  if (typeof raw === "object" && raw !== null) {
    const r = raw as Record<string, unknown>;
    const type = typeof r.type === "string" ? r.type : "object";
    return { type, optional: r.optional === true || r.default !== undefined, raw: type === "object" && r.type === undefined ? { type: "object", props: r } : r };
  }
  throw new Error(`Unsupported params rule ${JSON.stringify(raw)}`);
}

/** A value satisfying one rule. */
export function minimalValue(rawRule: RawRule, field = "?"): unknown {
  const { type, raw } = ruleOf(rawRule);
  const min = typeof raw.min === "number" ? raw.min : undefined;
  switch (type) {
    case "string": {
      const value = "x".repeat(Math.max(1, min ?? 1));
      if (raw.pattern instanceof RegExp && !raw.pattern.test(value)) throw new Error(`minimalValue: '${value}' does not match the pattern of '${field}'; teach it`);
      return value;
    }
    case "any":
      return "x";
    case "number":
      return min ?? 1;
    case "boolean":
      return true;
    case "date":
      return new Date().toISOString();
    case "array":
      return Array.from({ length: min ?? 0 }, () => (raw.items === undefined ? "x" : minimalValue(raw.items, `${field}[]`)));
    case "object":
      return raw.props && typeof raw.props === "object" ? minimalParams(raw.props as Record<string, unknown>) : {};
    case "equal":
      return raw.value;
    case "enum":
      return (raw.values as unknown[] | undefined)?.[0];
    default:
      throw new Error(`minimalValue does not know rule type '${type}' (field '${field}'); teach it`);
  }
}

/** Smallest params that pass validation: each required field gets a plain value of its type. */
export function minimalParams(schema: Record<string, unknown>): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const [field, raw] of Object.entries(schema)) {
    if (field.startsWith("$$")) continue;
    if (ruleOf(raw).optional) continue;
    params[field] = minimalValue(raw, field);
  }
  return params;
}
