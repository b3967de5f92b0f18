"""The desk over HTTP: agents set their presence; anyone with ``tickets:read`` sees the
tier queues and an agent's tickets. The API keeps its own desk (``engine.workers.desk``),
fed by its view, so a query never waits on the tier workers."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from engine.api.context import (
    VIEW_LOADING,
    ApiContext,
    ApiError,
    context_of,
    integration_of,
    model_response,
    parse_body,
    parse_parameter,
    requires,
    retry_later,
)
from engine.api.contract import (
    AgentId,
    AgentLoad,
    AgentQueue,
    PresenceAccepted,
    PresenceIn,
    Queues,
    TierQueueOut,
)
from engine.api.security import Scope
from engine.contract import AgentPresenceChanged, AgentPresenceData, Tier, to_json
from engine.contract.identity import event_id
from engine.contract.topics import AGENTS_PRESENCE
from engine.errors import PublishError
from engine.workers.desk import Desk

AGENT_ID: TypeAdapter[str] = TypeAdapter(AgentId)
NO_DIRECTORY = "no agents directory: the API runs without ENGINE_AGENTS_FILE"


def _desk(context: ApiContext) -> Desk:
    desk = context.view.desk
    if desk is None:
        raise ApiError(404, NO_DIRECTORY)
    return desk


def _agent_id(request: web.Request, desk: Desk) -> str:
    agent_id = parse_parameter(AGENT_ID, "agent_id", request.match_info["agent_id"])
    if agent_id not in desk.directory.agents:
        raise ApiError(404, f"no agent {agent_id} in the agents directory")
    return agent_id


def _load(desk: Desk, agent_id: str) -> AgentLoad:
    return AgentLoad(
        agent_id=agent_id,
        standing=desk.standing(agent_id),
        load=desk.load(agent_id),
        capacity=desk.directory.agents[agent_id].capacity,
    )


@requires(Scope.PRESENCE_WRITE)
async def post_presence(request: web.Request) -> web.Response:
    context = context_of(request)
    desk = _desk(context)
    agent_id = _agent_id(request, desk)
    given = parse_body(PresenceIn, await request.read())
    now = context.clock.now()
    record = AgentPresenceChanged(
        event_id=event_id("agent.presence", f"{agent_id}:{given.presence}:{now.isoformat()}"),
        occurred_at=now,
        source=context.source,
        data=AgentPresenceData(
            agent_id=agent_id,
            presence=given.presence,
            actor=integration_of(request).name,
            note=given.note,
        ),
    )
    try:
        await context.publisher.publish(AGENTS_PRESENCE, agent_id.encode(), to_json(record))
    except PublishError:
        raise retry_later("the presence topic is unavailable; retry later") from None
    accepted = PresenceAccepted(
        agent_id=agent_id, presence=given.presence, event_id=record.event_id
    )
    return model_response(accepted, 202)


@requires(Scope.TICKETS_READ)
async def get_queues(request: web.Request) -> web.Response:
    context = context_of(request)
    desk = _desk(context)
    if not context.view_ready():
        raise retry_later(VIEW_LOADING)
    now = context.clock.now()
    desk.tick(now)
    tiers = []
    for tier in Tier:
        queue = desk.queue(tier, now)
        tiers.append(
            TierQueueOut(
                tier=tier,
                waiting=queue.waiting,
                oldest_waiting_seconds=queue.oldest_waiting_seconds,
                assigned=queue.assigned,
                waiting_on_third_party=queue.waiting_on_third_party,
                agents=tuple(_load(desk, agent_id) for agent_id in queue.agent_ids),
            )
        )
    return model_response(Queues(tiers=tuple(tiers)))


@requires(Scope.TICKETS_READ)
async def get_agent_queue(request: web.Request) -> web.Response:
    context = context_of(request)
    desk = _desk(context)
    agent_id = _agent_id(request, desk)
    if not context.view_ready():
        raise retry_later(VIEW_LOADING)
    desk.tick(context.clock.now())
    queue = AgentQueue(agent=_load(desk, agent_id), tickets=tuple(desk.tickets_of(agent_id)))
    return model_response(queue)
