from prometheus_client import Counter

# Every label set is closed (the recognizers' kinds, two actions; three sides).
PII_FINDINGS = Counter(
    "synthlang_guardrail_pii_findings_total",
    "Personal data and secrets found in requests, by kind and by what was done (masked, blocked).",
    ["kind", "action"],
)
RULE_BLOCKS = Counter(
    "synthlang_guardrail_rule_blocks_total",
    "Requests and answers refused by deny rules or the moderation check, by side.",
    ["side"],
)
