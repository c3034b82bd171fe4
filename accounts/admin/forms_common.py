"""What several accounts admin pages share: the role list, the compression figures shown beside
the setting, a list-of-names field and the platform-staff check."""

from __future__ import annotations

from django import forms
from django.utils.html import format_html, format_html_join

from accounts.admin_scoping import administered_organization_ids

# Roles whose prose may be compressed. Tool results are never prose: they have their own,
# lossless setting (compression_tool_results).
MESSAGE_ROLES = [
    ("system", "system"),
    ("user", "user"),
    ("assistant", "assistant"),
]

# What each level saves and risks, measured by `manage.py synthlang_eval` on the held-out sets
# in eval/ (o200k_base): the median token saving of an agent conversation and of a chatty
# request, the share of all prose tokens saved, and the must_keep strings lost out of 260.
# proxy's tests recompute these figures, so the note beside the setting cannot drift from what
# the engine does.
COMPRESSION_LEVEL_FIGURES = {
    "low": {"agent_median": 0.2392, "chatty_median": 0.0, "prose_saved": 0.0, "lost": 0},
    "medium": {"agent_median": 0.2392, "chatty_median": 0.0447, "prose_saved": 0.0052, "lost": 0},
    "high": {"agent_median": 0.2401, "chatty_median": 0.1229, "prose_saved": 0.0291, "lost": 18},
}
COMPRESSION_LEVEL_RISKS = {
    "low": "Lossless and safe on any text (the platform default): whitespace that carries "
    "nothing, JSON minified, verbatim repeats and repeated tool results referenced. No word "
    "changes.",
    "medium": "Also removes request framing, fillers and verbose phrases from instructions. "
    "Never touches material (quotes, drafts, tables, citations, code, data) and never removes "
    "a sentence.",
    "high": "Also drops articles, courtesy sentences and intensifiers (telegraphic style): the "
    "wording of rules, such as ordinals and precedence, can change. For prompts you control.",
}


def compression_level_note() -> str:
    """The help text beside the level: what each one does, saves and risks, as measured."""
    rows = format_html_join(
        "",
        "<li><b>{}</b>: {} Saves {} of an agent conversation and {} of a chatty request "
        "(medians), {} of all prose; {} of 260 must-keep strings lost on held-out prompts.</li>",
        (
            (
                level,
                COMPRESSION_LEVEL_RISKS[level],
                f"{figures['agent_median']:.1%}",
                f"{figures['chatty_median']:.1%}",
                f"{figures['prose_saved']:.1%}",
                figures["lost"],
            )
            for level, figures in COMPRESSION_LEVEL_FIGURES.items()
        ),
    )
    return format_html(
        "Empty follows the platform default (SYNTHLANG_DEFAULT_LEVEL, low unless changed)."
        "<ul>{}</ul>",
        rows,
    )


class NameListField(forms.CharField):
    """A list of names (models, patterns like ``gpt-4o*``) typed as comma-separated text."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text", "Comma-separated; wildcards allowed (gpt-4o*). Empty: no restriction."
        )
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = super().to_python(value)
        return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


def adopt_saved(obj, saved) -> None:
    """Make the admin's unsaved ``obj`` the row a service just created.

    The admin keeps using its own instance after ``save_model`` (log entry, redirect),
    so it must carry the saved row's primary key and values.
    """
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def is_platform_staff(request) -> bool:
    return administered_organization_ids(request) is None
