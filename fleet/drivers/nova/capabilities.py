"""What an OpenStack/EasyStack endpoint declares, from its quirks (the flavour's, then what the
endpoint's version document showed): its calls, the kinds it offers and its default budgets."""

from __future__ import annotations

from dataclasses import replace

from fleet.domain import Action, ServerStatus
from fleet.drivers.actions import (
    AFTER_RESIZE,
    SIMPLE_KINDS,
    ActionSpec,
    Capabilities,
    Goal,
    Offer,
    Recipe,
    Step,
    creating,
    power,
    simple,
    tags,
    unsupported,
)
from fleet.drivers.base import BudgetUnit, RateBudget
from fleet.drivers.nova import create as cr
from fleet.drivers.nova import requests as rq
from fleet.drivers.nova.keystone import KEYSTONE_API_CLASS

S = ServerStatus
ACTION, DELETE, TAGS, LIST, SHOW = "action", "delete", "tags", "list", "show"
FLAVORS, VERSIONS = "flavors", "versions"
# No limits are documented for OpenStack/EasyStack (api-digest 6.4): these are conservative
# defaults, meant to be overridden per endpoint in the configuration.
DEFAULT_BUDGETS = {
    ACTION: (RateBudget(120, 60.0, BudgetUnit.REQUESTS),),
    DELETE: (RateBudget(120, 60.0, BudgetUnit.REQUESTS),),
    TAGS: (RateBudget(120, 60.0, BudgetUnit.REQUESTS),),
    LIST: (RateBudget(60, 60.0, BudgetUnit.REQUESTS),),
    SHOW: (RateBudget(600, 60.0, BudgetUnit.REQUESTS),),
    FLAVORS: (RateBudget(60, 60.0, BudgetUnit.REQUESTS),),
    cr.CREATE: (RateBudget(120, 60.0, BudgetUnit.REQUESTS),),
    cr.LIMITS: (RateBudget(60, 60.0, BudgetUnit.REQUESTS),),
    KEYSTONE_API_CLASS: (),
    VERSIONS: (),  # the version document, read once per driver
}
TAG_NOTE = "when the cloud serves the tag API (2.26+)"


# Nova resizes in two calls: resize -> VERIFY_RESIZE -> confirmResize. When the confirm fails (its
# poll, or a refusal of the call), revertResize returns the server to its old flavor and the
# sub-job fails with the reason.
RESIZE_RECIPE = Recipe(
    "resize/nova",
    (
        Step(Action.RESIZE),
        Step(Action.CONFIRM_RESIZE, compensated=True),
        Step(
            Action.REVERT_RESIZE,
            on_failure_only=True,
            doing="reverting to the old flavor",
            done="reverted to the old flavor",
            code="resize_reverted",
        ),
    ),
)
# EasyStack's online resize of a running server, asked for with `live`: one `live_resize` call.
LIVE_RESIZE_RECIPE = Recipe(
    "resize/live",
    (Step(Action.RESIZE),),
    live=True,
    when_live=True,
    when_status=frozenset({S.RUNNING}),
)


def capabilities_for(quirks: rq.NovaQuirks) -> Capabilities:
    dialect = "EasyStack" if quirks.start_body_true else "OpenStack"
    specs = [
        *(power(action, ACTION, 1) for action in (Action.START, Action.STOP, Action.REBOOT)),
        ActionSpec(Action.RESIZE, ACTION, 1, Goal.FLAVOR),
        ActionSpec(Action.CONFIRM_RESIZE, ACTION, 1, Goal.STEP, settles_in=AFTER_RESIZE),
        ActionSpec(Action.REVERT_RESIZE, ACTION, 1, Goal.STEP, settles_in=AFTER_RESIZE),
        ActionSpec(Action.DELETE, DELETE, 1, Goal.STATUS, S.DELETED),
    ]
    create_spec, create_offer = creating(cr.CREATE, 1)
    specs.append(create_spec)
    offers = {
        kind: simple(kind, action)
        for kind, action in SIMPLE_KINDS.items()
        if action not in (Action.TAG_ADD, Action.TAG_REMOVE)
    }
    for kind, action in (("tag_add", Action.TAG_ADD), ("tag_remove", Action.TAG_REMOVE)):
        if quirks.tag_api:
            offers[kind] = replace(simple(kind, action), note=TAG_NOTE)
        else:
            offers[kind] = unsupported(kind, action, quirks.no_tags or "no tag API")
    if quirks.tag_api:
        specs += tags(TAGS)
    recipes = (LIVE_RESIZE_RECIPE, RESIZE_RECIPE) if quirks.live_resize else (RESIZE_RECIPE,)
    offers["resize"] = Offer("resize", Action.RESIZE, recipes, needs=("flavor",))
    offers["create"] = create_offer
    return Capabilities(
        dialect=dialect,
        actions={s.action: s for s in specs},
        offers=offers,
        budgets=DEFAULT_BUDGETS,
    )
