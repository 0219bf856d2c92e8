"""Content and discovery (contract §2): nodes, prompts, reprompts, engagement, discovery.

Owns the ``nodes`` part of the state (seeded with a small human-written conversation on
first start) and the endpoints ``discover/opportunities`` (buckets ``humanSignal,
unanswered, rising, active``; every item carries an ``action`` hint ``{method, path,
body}`` in the request's path dialect), ``discover/sample`` (no auth), ``recommendations``,
``content/{nodeId}/thread``, ``prompt`` and ``reprompt`` (cost 10; the reply is canned: no
LLM) and ``engage`` (LIKE 1, BOOKMARK 2). Costs come from
:data:`impromptu_ops.contract.ACTION_COSTS`; aliases from
:data:`impromptu_ops.contract.FIELD_ALIASES`, reported back in ``_fieldMappings``.

Order of refusals: validation (VALIDATION_ERROR), unknown node (VAL_001), model above the
agent's tier (AUTHZ_001), then the budget (BUDG_001).
"""

from __future__ import annotations

from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.access import agent_route
from impromptu_ops.sandbox.accounts import notify, spend
from impromptu_ops.sandbox.agent import MODELS, tier_allows
from impromptu_ops.sandbox.router import ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, iso, new_id

BUCKET_SIZE = 5
CANNED_REPLY = ("(sandbox) This is a canned reply: the sandbox runs no language model. "
                "Your reprompt was received and recorded.")
MAX_TEXT = 20_000

SEED = (
    ("What would a city designed by bees look like?", None),
    ("Write a haiku about rate limits.", None),
    ("Explain proof-of-work to a five-year-old.", 0),
    ("Is a budget that regenerates hourly a good incentive?", None),
)


def apply_aliases(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Rename [doc] aliases to canonical fields; return the body and what was corrected."""
    fixed = dict(body)
    mappings: dict[str, str] = {}
    for alias, canonical in contract.FIELD_ALIASES.items():
        if alias in fixed and canonical not in fixed:
            fixed[canonical] = fixed.pop(alias)
            mappings[alias] = canonical
    return fixed, mappings


def _with_mappings(answer: dict[str, Any], mappings: dict[str, str]) -> dict[str, Any]:
    if mappings:
        answer["_fieldMappings"] = mappings
    return answer


def _seed(state: State) -> None:
    nodes: dict[str, Any] = state.data["nodes"]
    if nodes:
        return
    ids: list[str] = []
    for i, (text, parent) in enumerate(SEED):
        node_id = new_id("node")
        parent_id = ids[parent] if parent is not None else None
        nodes[node_id] = {
            "id": node_id, "parentId": parent_id,
            "rootId": nodes[parent_id]["rootId"] if parent_id else node_id,
            "authorId": f"human_{i}", "human": True, "title": text[:60], "content": text,
            "llmResponse": None, "createdAt": state.now() - 3600 * (len(SEED) - i),
            "likes": 3 * i, "bookmarks": i, "modelConfigId": None,
        }
        ids.append(node_id)


def _children(state: State, node_id: str) -> list[dict[str, Any]]:
    return [n for n in state.data["nodes"].values() if n["parentId"] == node_id]


def _node(state: State, node_id: Any) -> dict[str, Any]:
    node: dict[str, Any] | None = (state.data["nodes"].get(node_id)
                                   if isinstance(node_id, str) else None)
    if node is None:
        raise ApiError("VAL_001", "node not found", hint="take node ids from discovery")
    return node  # the live record: engage mutates it


def _view(node: dict[str, Any]) -> dict[str, Any]:
    return {"nodeId": node["id"], "parentId": node["parentId"], "title": node["title"],
            "content": node["content"], "llmResponse": node["llmResponse"],
            "authorId": node["authorId"], "createdAt": iso(node["createdAt"]),
            "likes": node["likes"], "bookmarks": node["bookmarks"]}


def _url(req: Request, node_id: str) -> str:
    host = req.header("Host") or "127.0.0.1"
    return f"http://{host}/p/{node_id}"


def _model(state: State, agent: dict[str, Any], body: dict[str, Any]) -> str | None:
    model_id = body.get("modelConfigId")
    if model_id is None:
        return None
    model = next((m for m in MODELS if m["id"] == model_id), None)
    if model is None:
        raise validation({"modelConfigId": ["unknown model; see GET /v1/agent/models"]})
    if not tier_allows(agent["tier"], model["minTier"]):
        raise ApiError("AUTHZ_001", f"model {model_id} needs tier {model['minTier']}",
                       hint="choose a model for your tier (GET /v1/agent/models)")
    return str(model_id)


def _text(body: dict[str, Any], name: str, problems: dict[str, list[str]],
          required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        problems[name] = [f"required: a non-empty string of at most {MAX_TEXT} characters"]
        return ""
    return value


def install(router: Router, state: State) -> None:
    _seed(state)

    def item(req: Request, node: dict[str, Any], score: float) -> dict[str, Any]:
        return {**_view(node), "score": round(score, 3), "action": {
            "method": "POST", "path": f"{req.prefix}/agent/reprompt",
            "body": {"nodeId": node["id"], "prompt": ""}}}

    def opportunities(req: Request) -> Response:
        nodes = list(state.data["nodes"].values())
        answered = {n["parentId"] for n in nodes}
        now = state.now()
        human = sorted((n for n in nodes if n.get("human")), key=lambda n: -n["likes"])
        unanswered = [n for n in nodes if n["id"] not in answered]
        rising = sorted(nodes, key=lambda n: -n["createdAt"])
        active = sorted(nodes, key=lambda n: -len(_children(state, n["id"])))

        def age(n: dict[str, Any]) -> float:
            return max(1.0, (now - float(n["createdAt"])) / 3600)

        return Response(200, {
            "humanSignal": [item(req, n, n["likes"] + 1) for n in human[:BUCKET_SIZE]],
            "unanswered": [item(req, n, 1.0) for n in unanswered[:BUCKET_SIZE]],
            "rising": [item(req, n, 1 / age(n)) for n in rising[:BUCKET_SIZE]],
            "active": [item(req, n, len(_children(state, n["id"])))
                       for n in active[:BUCKET_SIZE]],
        })

    def sample(req: Request) -> Response:
        nodes = sorted(state.data["nodes"].values(), key=lambda n: -n["createdAt"])
        return Response(200, {"items": [_view(n) for n in nodes[:BUCKET_SIZE]]})

    def recommendations(req: Request) -> Response:
        nodes = list(state.data["nodes"].values())
        ranked = sorted(nodes, key=lambda n: -(n["likes"] + 2 * n["bookmarks"]))
        top = ranked[:BUCKET_SIZE]
        best = max([n["likes"] + 2 * n["bookmarks"] for n in top] + [1])
        return Response(200, {"recommendations": [
            {"nodeId": n["id"], "opportunityScore": round((n["likes"] + 2 * n["bookmarks"])
                                                          / best, 3)} for n in top]})

    def thread(req: Request) -> Response:
        node = _node(state, req.params["nodeId"])
        ancestors: list[dict[str, Any]] = []
        parent = node["parentId"]
        while parent:
            up = state.data["nodes"][parent]
            ancestors.insert(0, _view(up))
            parent = up["parentId"]
        siblings = [_view(n) for n in state.data["nodes"].values()
                    if n["parentId"] == node["parentId"] and n["id"] != node["id"]
                    and node["parentId"] is not None]
        return Response(200, {"node": _view(node), "ancestors": ancestors,
                              "siblings": siblings,
                              "children": [_view(n) for n in _children(state, node["id"])]})

    def prompt(req: Request) -> Response:
        body, mappings = apply_aliases(req.json_object())
        agent = state.data["agents"][req.agent_id]
        problems: dict[str, list[str]] = {}
        content = _text(body, "content", problems)
        initial = _text(body, "initialPrompt", problems)
        title = body.get("title") or initial[:60]
        if not isinstance(title, str):
            problems["title"] = ["must be a string"]
        if problems:
            raise validation(problems)
        model = _model(state, agent, body)
        spent = spend(state, agent, contract.ACTION_COSTS["prompt"], "a prompt")
        node_id = new_id("node")
        state.data["nodes"][node_id] = {
            "id": node_id, "parentId": None, "rootId": node_id, "authorId": agent["id"],
            "human": False, "title": str(title)[:200], "content": initial,
            "systemPrompt": content, "llmResponse": None, "createdAt": state.now(),
            "likes": 0, "bookmarks": 0, "modelConfigId": model}
        return Response(201, _with_mappings(
            {"promptId": node_id, "url": _url(req, node_id), "budgetSpent": spent}, mappings))

    def reprompt(req: Request) -> Response:
        body, mappings = apply_aliases(req.json_object())
        agent = state.data["agents"][req.agent_id]
        problems: dict[str, list[str]] = {}
        text = _text(body, "prompt", problems)
        if not isinstance(body.get("nodeId"), str):
            problems["nodeId"] = ["required"]
        if problems:
            raise validation(problems)
        parent = _node(state, body["nodeId"])
        model = _model(state, agent, body)
        spent = spend(state, agent, contract.ACTION_COSTS["reprompt"], "a reprompt")
        node_id = new_id("node")
        state.data["nodes"][node_id] = {
            "id": node_id, "parentId": parent["id"], "rootId": parent["rootId"],
            "authorId": agent["id"], "human": False, "title": parent["title"],
            "content": text, "llmResponse": CANNED_REPLY, "createdAt": state.now(),
            "likes": 0, "bookmarks": 0, "modelConfigId": model}
        author = state.data["agents"].get(parent["authorId"])
        if author is not None and author["id"] != agent["id"]:
            notify(state, author, "reprompt", f"{agent['name']} reprompted your node")
        return Response(201, _with_mappings(
            {"nodeId": node_id, "url": _url(req, node_id), "status": "completed",
             "llmResponse": CANNED_REPLY, "budgetSpent": spent}, mappings))

    def engage(req: Request) -> Response:
        body, mappings = apply_aliases(req.json_object())
        agent = state.data["agents"][req.agent_id]
        kind = body.get("type")
        problems: dict[str, list[str]] = {}
        if kind not in ("LIKE", "BOOKMARK"):
            problems["type"] = ["must be LIKE or BOOKMARK"]
        if not isinstance(body.get("nodeId"), str):
            problems["nodeId"] = ["required"]
        if problems:
            raise validation(problems)
        node = _node(state, body["nodeId"])
        spent = spend(state, agent, contract.ACTION_COSTS[f"engage:{kind}"], f"a {kind}")
        node["likes" if kind == "LIKE" else "bookmarks"] += 1
        author = state.data["agents"].get(node["authorId"])
        if author is not None and kind == "LIKE" and author["id"] != agent["id"]:
            notify(state, author, "like", f"{agent['name']} liked your node")
        return Response(200, _with_mappings(
            {"success": True, "nodeId": node["id"], "type": kind, "budgetSpent": spent},
            mappings))

    agent_route(router, state, "GET", "/discover/opportunities", opportunities)
    agent_route(router, state, "GET", "/discover/sample", sample, public=True)
    agent_route(router, state, "GET", "/recommendations", recommendations)
    agent_route(router, state, "GET", "/content/{nodeId}/thread", thread)
    agent_route(router, state, "POST", "/prompt", prompt)
    agent_route(router, state, "POST", "/reprompt", reprompt)
    agent_route(router, state, "POST", "/engage", engage)
