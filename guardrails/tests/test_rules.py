import pytest

from guardrails.rules import CompiledRule, RuleInvalid, check_pattern, compile_pattern, evaluate


def rule(name, pattern, action="deny", target="both", kind="phrase"):
    return CompiledRule(name, action, target, compile_pattern(kind, pattern))


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|aa)+b", r"(\w+\s?)+x$"])
def test_catastrophic_regexes_are_refused(pattern):
    with pytest.raises(RuleInvalid, match="too long"):
        check_pattern("regex", pattern)


@pytest.mark.parametrize("pattern", ["foo[", "", "x" * 501])
def test_malformed_empty_or_oversized_patterns_are_refused(pattern):
    with pytest.raises(RuleInvalid):
        check_pattern("regex", pattern)


def test_a_pattern_matching_empty_text_is_refused():
    with pytest.raises(RuleInvalid, match="empty"):
        check_pattern("regex", "a*")


def test_phrases_match_whole_words_whatever_the_case():
    rules = (rule("codename", "Project Falcon"),)
    assert evaluate(rules, "request", ["about project falcon today"]).rule == "codename"
    assert evaluate(rules, "request", ["about project falconry"]) is None


def test_a_phrase_with_regex_characters_is_literal():
    rules = (rule("price", "$5.00 (net)"),)
    assert evaluate(rules, "request", ["costs $5.00 (net)"]) is not None
    assert evaluate(rules, "request", ["costs $5x00 net"]) is None


def test_an_allow_rule_exempts_the_matches_it_covers_only():
    rules = (rule("pw", "password"), rule("reset", "password reset", action="allow"))
    assert evaluate(rules, "request", ["how does password reset work"]) is None
    assert evaluate(rules, "request", ["password reset, and my password is x"]).rule == "pw"


def test_rules_apply_to_their_side_only():
    rules = (rule("out", "secret sauce", target="response"),)
    assert evaluate(rules, "request", ["the secret sauce"]) is None
    assert evaluate(rules, "response", ["the secret sauce"]).rule == "out"


def test_a_search_that_runs_out_of_time_counts_as_a_deny():
    # Compiled without check_pattern, as a row edited in the database could be.
    slow = CompiledRule("slow", "deny", "both", compile_pattern("regex", r"(a+)+$"))
    assert evaluate((slow,), "request", ["a" * 50_000 + "!"]).rule == "slow"
