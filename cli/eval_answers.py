"""`kommo-agent eval answers --dataset FILE`: what customers would read, scored.

Every question goes through the real runtime in dry run (the configured LLM, or extractive
answers without a key) and is scored by `core.ai.eval.answers`: price stated, wrong price,
unanswerable handled, invented prices, per language. The agent is either an existing one
(`--org/--agent`) or a throwaway one over `--knowledge` files (and a cut of `--price-list`),
indexed into a temporary vector store that is removed afterwards.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from cli.common import run_with_services
from cli.knowledge import eval_group
from core.ai.eval.answers import SPLITS, evaluate_answers, format_report, load_dataset, price_list_subset
from core.ai.factory import build_runtime, build_translator, known_secrets
from core.ai.knowledge import build_knowledge
from core.errors import KommoAgentError, NotFound
from core.ids import new_id
from core.models.agent import Agent


async def _index(ingestion, org_id: str, agent_id: str, files: list[tuple[str, bytes]]) -> list[str]:
    ids = []
    for name, data in files:
        source = await ingestion.add_file(org_id, agent_id, name, data)
        ids.append(source.id)
        click.echo(f"  indexing {name} ...", err=True)
        done = await ingestion.index_source(org_id, source.id)
        if done.status != "ready":
            raise KommoAgentError(f"could not index {name}: {done.error}")
    return ids


async def _known_text(store, org_id: str, agent_id: str, live: list[str]) -> str:
    points = await store.fetch(org_id, agent_id, where={"gen_key": live}) if live else []
    return "\n".join(str(p.payload.get("text", "")) for p in points)


@eval_group.command("answers")
@click.option("--dataset", required=True, type=click.Path(exists=True, dir_okay=False), help="questions JSONL")
@click.option("--split", type=click.Choice(SPLITS), default="all", show_default=True,
              help="The dataset's tuning half, its held-apart half, or both.")
@click.option("--org", "org_id", default=None, help="Ask this organisation's agent (with --agent).")
@click.option("--agent", "agent_id", default=None)
@click.option("--knowledge", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Files for a throwaway agent (repeatable).")
@click.option("--price-list", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV price list for the throwaway agent, cut to the asked rows (`item`), their neighbours "
                   "and a random fill of --rows rows (0: all rows).")
@click.option("--rows", type=int, default=300, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_answers(dataset: str, split: str, org_id: str | None, agent_id: str | None, files: tuple[str, ...],
                 price_list: str | None, rows: int, as_json: bool) -> None:
    """Score an agent's answers: price stated, wrong price, unanswerable handled, invented prices."""
    try:
        questions = load_dataset(dataset, split)
    except ValueError as exc:
        raise click.UsageError(f"--dataset: {exc}") from None
    if not questions:
        raise click.UsageError(f"--dataset has no questions in split {split!r}")
    if bool(org_id) != bool(agent_id):
        raise click.UsageError("give --org and --agent together")
    if not org_id and not files and not price_list:
        raise click.UsageError("give --org/--agent, or --knowledge files / --price-list for a throwaway agent")
    uploads = [(Path(f).name, Path(f).read_bytes()) for f in files]
    if price_list:
        data = Path(price_list).read_bytes()
        asked = {str(q["item"]) for q in questions if q.get("item")}
        uploads.append((Path(price_list).name, price_list_subset(data, asked, size=rows) if rows else data))

    async def job(services):
        if org_id:
            agent = await services.storage.agents.get(org_id, agent_id)
            if agent is None:
                raise NotFound(f"agent {agent_id} not found in organisation {org_id}")
            runtime = await services.runtime()
            k = await services.knowledge()
            known = await _known_text(k.vector_store, org_id, agent.id, await k.retriever.live_generations(org_id, agent.id))
            return await evaluate_answers(runtime, org_id, agent, questions, known)
        from core.storage.vectors.edge import EdgeVectorStore  # noqa: PLC0415 - loads the vector engine

        org = new_id("evalorg")
        agent = Agent(_id=new_id("evalagent"), org_id=org, name="Evaluation agent")
        with tempfile.TemporaryDirectory(prefix="kommo-eval-answers-") as folder:
            llm = await services.llm()
            k = await build_knowledge(services.settings, services.storage, meter=services.meter,
                                      vector_store=EdgeVectorStore(Path(folder)),
                                      translator=build_translator(services.settings.knowledge, llm))
            source_ids: list[str] = []
            try:
                source_ids = await _index(k.ingestion, org, agent.id, uploads)
                runtime = build_runtime(k.retriever, catalog=services.storage.kommo_catalog, llm=llm,
                                        secrets=known_secrets(services.settings))
                known = await _known_text(k.vector_store, org, agent.id, await k.retriever.live_generations(org, agent.id))
                return await evaluate_answers(runtime, org, agent, questions, known,
                                              progress=lambda msg: click.echo(f"  {msg}", err=True))
            finally:
                for source_id in source_ids:
                    await k.ingestion.delete_source(org, source_id)
                await k.close()

    report = run_with_services(job)
    click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=1) if as_json else format_report(report))
