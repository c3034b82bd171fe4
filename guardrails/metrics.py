from prometheus_client import Counter

# Both label sets are closed (the recognizers' kinds, two actions; two sides).
PII_FINDINGS = Counter(
    "synthlang_guardrail_pii_findings_total",
    "Personal data and secrets found in requests, by kind and by what was done (masked, blocked).",
    ["kind", "action"],
)
RULE_BLOCKS = Counter(
    "synthlang_guardrail_rule_blocks_total",
    "Requests and answers refused by an organization's deny rules, by side.",
    ["side"],
)
