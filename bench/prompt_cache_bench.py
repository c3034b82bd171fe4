"""Provider prompt caching: what a 20-turn conversation costs with and without it.

    python bench/prompt_cache_bench.py [--turns 20] [--system-tokens 3000]
        [--compression off|low|medium|high] [--json out.json]

Starts the fake upstream (which caches prompts as Anthropic and OpenAI do, see
proxy/providers/fake_cache.py) and one proxy process, and creates two organizations:
one with the providers' prompt caches used as the proxy does by default (Anthropic
breakpoints, a prompt_cache_key), one with both switched off. Each holds the same
conversation (a system prompt of about 3,000 tokens, then 20 user turns, each sent with
the whole history) on a route to the Anthropic provider (claude-sonnet-4-5) and on an
OpenAI route (gpt-4.1), with compression at the platform's default level. Input cost is
read from the usage events the proxy wrote and priced with the seeded list prices.

OpenAI caches prefixes automatically, so both organizations hit its cache alike here;
what prompt_cache_key adds (keeping one organization's traffic on the machines that hold
its prefixes under load) cannot be emulated offline. Its "without" figure is the input
priced as if nothing had been cached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from servers import bench_workdir, fake_upstream, manage_shell, migrate, synthlang_proxy

from billing.pricing import Price, TokenCounts

ROUTES = {"anthropic": ("claude-bench", "claude-sonnet-4-5"), "openai": ("gpt-bench", "gpt-4.1")}
ORGANIZATIONS = ("caching", "no-caching")

TOPICS = [
    ("refunds", "a refund", "the original payment method"),
    ("exchanges", "an exchange", "the same product line"),
    ("warranty claims", "a warranty repair", "an authorised workshop"),
    ("late deliveries", "a delivery credit", "the next invoice"),
    ("damaged parcels", "a replacement", "the nearest depot"),
    ("subscriptions", "a pause of the plan", "the next billing cycle"),
    ("gift cards", "a balance transfer", "a new card number"),
    ("business accounts", "a volume discount", "the account manager"),
]


def system_prompt(tokens_wanted: int) -> str:
    """A support agent's policy of about ``tokens_wanted`` tokens, the same on every run."""
    from proxy.tokens import count_tokens

    lines = [
        "You are the customer support assistant of Nordvik Home, a furniture retailer "
        "with stores in Norway, Sweden and Denmark. Follow the policy below exactly; when "
        "it does not cover a case, say so and offer to hand the case to a human agent."
    ]
    section = 0
    while count_tokens("\n".join(lines), model="claude") < tokens_wanted:
        topic, remedy, channel = TOPICS[section % len(TOPICS)]
        number = section + 1
        days = 14 + 7 * (section % 5)
        lines.append(f"\nSection {number}: {topic}.")
        lines.append(
            f"{number}.1 A customer may ask for {remedy} within {days} days of delivery if "
            f"they show the order number and the receipt; after {days} days, only a store "
            "manager may approve it."
        )
        lines.append(
            f"{number}.2 The agent confirms the customer's name, the order number and the "
            f"delivery address before discussing {topic}, and never reads out card numbers."
        )
        lines.append(
            f"{number}.3 {remedy.capitalize()} is settled through {channel}; orders paid "
            f"in instalments are settled by the finance partner within {3 + section % 4} "
            "working days."
        )
        lines.append(
            f"{number}.4 For orders above {500 + 250 * (section % 6)} euros the agent "
            "records the case in the ticket system with the tag "
            f"'{topic.replace(' ', '-')}-{number}' and tells the customer the ticket number."
        )
        section += 1
    return "\n".join(lines)


QUESTIONS = [
    "I bought a sofa three weeks ago and one cushion is torn. What can I do?",
    "The order number is NH-48213. Can I get a replacement instead of money back?",
    "How long does the replacement take to arrive in Bergen?",
    "Can I keep the torn cushion until the new one arrives?",
    "I also ordered a lamp that never came. Is that a late delivery?",
    "It was due on Monday; today is Friday. Do I get a credit?",
    "Will the credit show on my next invoice or on my card?",
    "My partner paid for the lamp with a gift card. Does that change anything?",
    "Can I transfer the rest of that gift card to my own account?",
    "We also have a business account for our café. Are there volume discounts?",
    "Who is our account manager and how do I reach them?",
    "The café order was 1,800 euros. Does it need a ticket?",
    "Please give me the ticket tag you would use for it.",
    "Could I pause our plant-care subscription for two months?",
    "When would the pause start if I ask today?",
    "Is the sofa covered by warranty if the frame cracks later?",
    "Where is the nearest authorised workshop in Bergen?",
    "Can you summarise everything we agreed so far?",
    "Which of these cases need a store manager's approval?",
    "Thank you. Please hand the café case to a human agent.",
]

SETUP = """
import json
from accounts import services
from accounts.models import Organization
from proxy.models import Deployment, ModelRoute
config = json.loads(CONFIG)
keys = {}
for slug, caching in (("caching", True), ("no-caching", False)):
    org = Organization.objects.filter(slug=slug).first() or services.organization_create(
        name=slug, slug=slug)
    services.organization_update_settings(
        organization=org, actor=None, prompt_cache_breakpoints=caching,
        prompt_cache_key_scope="organization" if caching else "off")
    user, _ = services.user_get_or_create(username=f"bench-{slug}")
    services.membership_set(organization=org, user=user, role="premium", actor=None)
    services.role_limit_set(organization=org, role="premium", rpm_limit=100000,
        tpm_limit=1000000000, actor=None)
    for provider, (public, upstream) in config["routes"].items():
        credential = services.provider_credential_set(
            organization=org, provider=provider, key=f"sk-bench-{slug}-{provider}",
            base_url=config["upstream"], name="bench",
            options={"prompt_cache_key": True} if provider == "openai" else {}, actor=None)
        route, _ = ModelRoute.objects.get_or_create(organization=org, public_name=public)
        route.deployments.all().delete()
        Deployment.objects.create(route=route, provider=provider, credential=credential,
            upstream_model=upstream)
    keys[slug] = services.api_key_create(organization=org, user=user, actor=None)[1]
print(json.dumps(keys))
"""

EVENTS = """
import json
from datetime import UTC, datetime
from billing.models import UsageEvent
from billing.selectors import price_for
from billing.usage import usage_flush_run
usage_flush_run()
ids = json.loads(CONFIG)
rows = {}
for event in UsageEvent.objects.filter(request_id__in=ids):
    price = price_for(event.upstream_model, event.created_at)
    rows[event.request_id] = {
        "prompt_tokens": event.prompt_tokens, "completion_tokens": event.completion_tokens,
        "cached_tokens": event.cached_tokens, "cache_write_tokens": event.cache_write_tokens,
        "cost_micros": event.cost_micros, "tokens_saved": event.tokens_saved,
        "prompt_cache_saved_micros": event.prompt_cache_saved_micros,
        "compression_level": event.compression_level,
        "price": [price.input_per_mtok_micros, price.output_per_mtok_micros,
                  price.cached_input_per_mtok_micros, price.cache_write_per_mtok_micros],
    }
print(json.dumps(rows))
"""


def shell(env: dict, script: str, config) -> dict:
    code = f"CONFIG = {json.dumps(json.dumps(config))}\n{script}"
    return json.loads(manage_shell(code, env)[-1])


async def converse(session, url: str, key: str, model: str, system: str, args) -> list:
    """One conversation; per turn the request id and the usage the client saw."""
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"}
    if args.compression:
        headers["x-synthlang-compression"] = args.compression
    messages = [{"role": "system", "content": system}]
    turns_seen = []
    for question in QUESTIONS[: args.turns]:
        messages.append({"role": "user", "content": question})
        body = {"model": model, "messages": messages, "max_tokens": 200}
        async with session.post(url, json=body, headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"{model}: {response.status} {answer}")
            turns_seen.append(
                {
                    "request_id": response.headers["x-request-id"],
                    "compression": response.headers.get("x-synthlang-compression", ""),
                    "usage": answer["usage"],
                }
            )
        messages.append(answer["choices"][0]["message"])
    return turns_seen


def input_micros(event: dict, *, cached: bool) -> float:
    """The input part of a request's cost in (fractional) micro-dollars; ``cached=False``
    prices every input token at the input rate."""
    price = Price(*event["price"])
    if not cached:
        return event["prompt_tokens"] * price.input_per_mtok_micros / 1_000_000
    tokens = TokenCounts(
        event["prompt_tokens"], 0, event["cached_tokens"], event["cache_write_tokens"]
    )
    return (
        tokens.fresh_prompt_tokens * price.input_per_mtok_micros
        + tokens.cache_read_tokens * price.cached_rate
        + tokens.cache_write_tokens * price.cache_write_rate
    ) / 1_000_000


def prepare_organizations(env: dict) -> dict:
    """Migrate, then the two organizations and their routes; their keys by slug."""
    migrate(env)
    return shell(env, SETUP, {"routes": ROUTES, "upstream": env["OPENAI_BASE_URL"]})


async def main_async(args) -> dict:
    workdir = bench_workdir("prompt-cache")
    async with (
        fake_upstream(workdir) as upstream_url,
        synthlang_proxy(
            workdir,
            upstream_url=upstream_url,
            setup=prepare_organizations,
            log_name="p.log",
            # The organizations' provider keys name the local upstream over http.
            OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
        ) as proxy,
    ):
        keys = proxy.key
        url = f"{proxy.url}/v1/chat/completions"
        system = system_prompt(args.system_tokens)
        runs = {}
        async with aiohttp.ClientSession() as session:
            for provider, (public, _upstream) in ROUTES.items():
                for slug in ORGANIZATIONS:
                    runs[(provider, slug)] = await converse(
                        session, url, keys[slug], public, system, args
                    )
        await asyncio.sleep(1.5)  # the proxy hands usage over after each response
        ids = [turn["request_id"] for run in runs.values() for turn in run]
        events = shell(proxy.env, EVENTS, ids)
        return summarise(runs, events, args)


def summarise(runs: dict, events: dict, args) -> dict:
    result = {"turns": args.turns, "system_tokens": args.system_tokens, "routes": {}}
    for provider, (_public, upstream) in ROUTES.items():
        caching = [events[turn["request_id"]] for turn in runs[(provider, "caching")]]
        plain = [events[turn["request_id"]] for turn in runs[(provider, "no-caching")]]
        with_cache = sum(input_micros(event, cached=True) for event in caching)
        if provider == "anthropic":
            without = sum(input_micros(event, cached=True) for event in plain)
        else:
            without = sum(input_micros(event, cached=False) for event in caching)
        result["routes"][provider] = {
            "model": upstream,
            "compression": sorted({turn["compression"] for turn in runs[(provider, "caching")]}),
            "tokens_saved_by_compression": sum(event["tokens_saved"] for event in caching),
            "prompt_tokens": sum(event["prompt_tokens"] for event in caching),
            "input_cost_without_usd": round(without / 1_000_000, 6),
            "input_cost_with_usd": round(with_cache / 1_000_000, 6),
            "input_cost_reduction": round(1 - with_cache / without, 4) if without else 0.0,
            "prompt_cache_saved_usd": sum(e["prompt_cache_saved_micros"] for e in caching)
            / 1_000_000,
            "hit_rate_per_turn": [
                round(event["cached_tokens"] / event["prompt_tokens"], 3) for event in caching
            ],
            "written_per_turn": [event["cache_write_tokens"] for event in caching],
            "hit_rate_per_turn_without": [
                round(event["cached_tokens"] / event["prompt_tokens"], 3) for event in plain
            ],
        }
    return result


def render(result: dict) -> str:
    routes = result["routes"]
    lines = [
        f"{result['turns']} turns, system prompt of about {result['system_tokens']} tokens, "
        f"compression {', '.join(routes['anthropic']['compression'])}",
        "",
        "| route | model | input cost without | with | lower by | prompt-cache saving |",
        "|---|---|---|---|---|---|",
    ]
    for provider, data in routes.items():
        lines.append(
            f"| {provider} | {data['model']} | ${data['input_cost_without_usd']:.6f} | "
            f"${data['input_cost_with_usd']:.6f} | {data['input_cost_reduction']:.1%} | "
            f"${data['prompt_cache_saved_usd']:.6f} |"
        )
    lines += ["", "| turn | anthropic read / written | openai cached |", "|---|---|---|"]
    anthropic, openai = routes["anthropic"], routes["openai"]
    for turn in range(result["turns"]):
        lines.append(
            f"| {turn + 1} | {anthropic['hit_rate_per_turn'][turn]:.1%} / "
            f"{anthropic['written_per_turn'][turn]} | {openai['hit_rate_per_turn'][turn]:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--system-tokens", type=int, default=3000)
    parser.add_argument(
        "--compression",
        choices=("off", "low", "medium", "high"),
        help="x-synthlang-compression for every request (default: the platform's level)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.turns = min(args.turns, len(QUESTIONS))
    result = asyncio.run(main_async(args))
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
