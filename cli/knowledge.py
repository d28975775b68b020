"""`kommo-agent knowledge ...` and `kommo-agent eval retrieval`.

Without `kommo-agent up` the CLI indexes inline in this process (no Celery worker needed); while
`up` runs, its worker owns the embedded vector store and the CLI hands it the work
(`cli/stack.py`). Either way it shows progress and exits non-zero with the reason when a source
fails.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import click

from cli import stack
from cli.common import require_agent, require_org, run_with_services
from cli.output import emit_json, json_option, pick
from cli.progress import ProgressLine, eta_text
from core.ai.errors import AlreadyAdded
from core.ai.eval.retrieval import REFERENCE, ReferenceTranslations, evaluate_retrieval, format_report, load_jsonl
from core.ai.factory import build_translator
from core.ai.ingest.leases import INTERRUPTED, sweep_orphans
from core.ai.ingest.sources import SourceIntake
from core.ai.knowledge import build_knowledge
from core.errors import KommoAgentError, NotFound
from core.models.knowledge import KnowledgeSource, SourceStatus

_line: ProgressLine | None = None  # the source being indexed by this command (one at a time)


async def _progress(source: KnowledgeSource) -> None:
    if _line is not None:
        _line.update(source.chunks_done, source.chunks_total, source.eta_s)


def _column_list(value: str | None) -> list[str]:
    return [name.strip() for name in (value or "").split(",") if name.strip()]


def _columns(embed: str | None, keyword: str | None, skip: str | None) -> dict[str, list[str]] | None:
    chosen = {"embed": _column_list(embed), "keyword": _column_list(keyword), "skip": _column_list(skip)}
    return {k: v for k, v in chosen.items() if v} or None


def _column_options(func):
    """--embed-columns / --keyword-columns / --skip-columns (stored on the source)."""
    for name, help_text in (
            ("--skip-columns", "Table columns only shown, neither embedded nor keyword-indexed (comma-separated "
                               "header names)."),
            ("--keyword-columns", "Table columns only keyword-indexed (codes), not embedded."),
            ("--embed-columns", "Table columns to embed (what customers name items by); '*' embeds every column.")):
        func = click.option(name, default=None, help=help_text)(func)
    return func


def _describe_columns(source: KnowledgeSource) -> None:
    if source.columns:
        roles = {"embed": [], "keyword": [], "payload": []}
        for c in source.columns:
            roles.setdefault(c["role"], []).append(f"{c['header'] or '(no header)'} ({c['kind']})")
        click.echo("  columns: " + "; ".join(f"{role}: {', '.join(names)}" for role, names in roles.items() if names),
                   err=True)


class _Local:
    """No stack owns the store: this command opens it (holding the owner lock) and indexes inline."""

    def __init__(self, knowledge) -> None:
        self.knowledge = knowledge
        self.intake = knowledge.ingestion
        self.model_announced = False

    async def index(self, org_id: str, source: KnowledgeSource, force: bool) -> KnowledgeSource:
        if not self.model_announced:  # the encoders load on the first source: seconds of silence otherwise
            click.echo("  loading the language model...", err=True)
            self.model_announced = True
        try:
            return await self.knowledge.ingestion.index_source(org_id, source.id, force=force,
                                                               on_progress=_progress)
        except asyncio.CancelledError:
            # Ctrl-C before the run took the source: nobody else would ever index it here.
            repo = self.knowledge.ingestion.storage.knowledge
            current = await repo.get(org_id, source.id)
            if current is not None and current.status == SourceStatus.QUEUED:
                await repo.set_status(org_id, source.id, SourceStatus.FAILED, error=INTERRUPTED)
            raise

    async def remove(self, org_id: str, source_id: str) -> None:
        await self.knowledge.ingestion.delete_source(org_id, source_id)


class _ThroughStack:
    """The stack's worker owns the store: it indexes and removes; the bar follows Mongo."""

    def __init__(self, services) -> None:
        self.services = services
        self.intake = SourceIntake(services.storage, services.settings.knowledge)

    async def index(self, org_id: str, source: KnowledgeSource, force: bool) -> KnowledgeSource:
        repo = self.services.storage.knowledge

        async def show() -> None:
            current = await repo.get(org_id, source.id)
            if current is not None and current.chunks_total:
                await _progress(current)

        async def cancel() -> None:
            await repo.request_cancel(org_id, source.id)
            click.echo(f"\ninterrupted: asking the worker to stop indexing {source.id}", err=True)
            await _await_end(repo, org_id, source.id, self.services.settings.knowledge.ingest_heartbeat_s * 3 + 5)

        result = await stack.call(self.services.settings, "ingest.index_source", [org_id, source.id, force],
                                  while_waiting=show, on_cancel=cancel)
        if result.get("status") == "failed":
            raise KommoAgentError(result.get("error") or "indexing failed")
        return await repo.get(org_id, source.id)

    async def remove(self, org_id: str, source_id: str) -> None:
        result = await stack.call(self.services.settings, "ingest.delete_source", [org_id, source_id], timeout=120)
        if result.get("status") == "failed":
            raise NotFound(result.get("error") or f"no source {source_id}")


async def _await_end(repo, org_id: str, source_id: str, timeout: float) -> None:
    """Wait until the worker has ended the source's run (after a cancel request)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        current = await repo.get(org_id, source_id)
        if current is None or not current.in_progress:
            return
        await asyncio.sleep(0.5)


async def _with_knowledge(services, job):
    if stack.through_stack(services.settings):
        return await job(_ThroughStack(services))
    # No task queue: this command indexes inline instead of handing sources to a worker.
    knowledge = await build_knowledge(services.settings, services.storage, meter=services.meter,
                                      owner_role="kommo-agent knowledge (a CLI command)")
    try:
        return await job(_Local(knowledge))
    finally:
        await knowledge.close()


async def _index(k, org_id: str, source: KnowledgeSource, force: bool = False, *, new: bool = False) -> bool:
    """Index and report; a new source that fails (a file that cannot be parsed) is not kept."""
    global _line
    click.echo(f"indexing {source.title} ({source.id})", err=True)
    try:
        with ProgressLine(source.title) as _line:
            done = await k.index(org_id, source, force)
    except KommoAgentError as exc:
        click.echo(f"\nerror: {source.title}: {exc}", err=True)
        if new and exc.code != "interrupted":
            failed = await k.intake.storage.knowledge.get(org_id, source.id)
            if failed is not None and failed.generation == 0 and failed.status == SourceStatus.FAILED:
                await k.intake.discard(org_id, source.id)
                click.echo("  nothing was added; fix the file or link and add it again", err=True)
        return False
    click.echo(f"\n  ready: {done.chunks_total} chunks", err=True)
    _describe_columns(done)
    return True


@click.group()
def knowledge() -> None:
    """Knowledge sources of an agent (files, links, FAQ)."""


@knowledge.command("add")
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_id", required=True)
@click.option("--crawl", is_flag=True, help="Follow same-site links of URLs (page cap from settings).")
@_column_options
@click.argument("items", nargs=-1, required=True)
def add(org_id: str, agent_id: str, crawl: bool, items: tuple[str, ...], embed_columns: str | None,
        keyword_columns: str | None, skip_columns: str | None) -> None:
    """Add files or URLs and index them now (through the running stack's worker while `up` runs).
    Tables (CSV, XLSX) get column roles decided from their headers and values (printed when
    indexed); the --*-columns options override them."""
    columns = _columns(embed_columns, keyword_columns, skip_columns)

    async def job(services):
        await require_agent(services, org_id, agent_id)

        async def inner(k) -> bool:
            ok = True
            for item in items:
                try:
                    if item.lower().startswith(("http://", "https://")):
                        source = await k.intake.add_url(org_id, agent_id, item, crawl=crawl)
                    else:
                        path = Path(item)
                        if not path.is_file():
                            raise NotFound(f"{item}: no such file")
                        source = await k.intake.add_file(org_id, agent_id, path.name, path.read_bytes(),
                                                         columns=columns)
                except AlreadyAdded as exc:
                    click.echo(f"already added: {exc}", err=True)
                    continue
                except KommoAgentError as exc:
                    click.echo(f"error: {item}: {exc}", err=True)
                    ok = False
                    continue
                ok = await _index(k, org_id, source, new=True) and ok
                click.echo(source.id)
            return ok
        return await _with_knowledge(services, inner)

    if not run_with_services(job):
        sys.exit(1)


@knowledge.command("faq")
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_id", required=True)
@click.option("--question", "-q", "questions", multiple=True, required=True, help="A question (repeat with --answer)")
@click.option("--answer", "-a", "answers", multiple=True, required=True, help="Its answer, in the same order")
@click.option("--title", default="FAQ", show_default=True, help="The source's title")
def faq(org_id: str, agent_id: str, questions: tuple[str, ...], answers: tuple[str, ...], title: str) -> None:
    """Add question/answer pairs as one source and index them now."""
    if len(questions) != len(answers):
        raise click.UsageError(f"{len(questions)} --question but {len(answers)} --answer: give them in pairs")

    async def job(services):
        await require_agent(services, org_id, agent_id)

        async def inner(k) -> bool:
            pairs = [{"question": q, "answer": a} for q, a in zip(questions, answers, strict=True)]
            try:
                source = await k.intake.add_faq(org_id, agent_id, pairs, title=title)
            except AlreadyAdded as exc:
                click.echo(f"already added: {exc}", err=True)
                return True
            ok = await _index(k, org_id, source, new=True)
            click.echo(source.id)
            return ok
        return await _with_knowledge(services, inner)

    if not run_with_services(job):
        sys.exit(1)


@knowledge.command("list")
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_id", required=True)
@json_option
def list_sources(org_id: str, agent_id: str, as_json: bool) -> None:
    """List an agent's sources with status and progress."""

    async def job(services):
        await require_agent(services, org_id, agent_id)
        # A source whose run died (no heartbeat) is shown as failed, never as busy forever.
        await sweep_orphans(services.storage.knowledge, services.settings.knowledge.ingest_stale_s)
        return await services.storage.knowledge.for_agent(org_id, agent_id)

    sources = run_with_services(job)
    if as_json:
        emit_json([{**pick(s, "id", "status", "kind", "title", "url", "chunks_done", "chunks_total", "size_bytes",
                           "updated_at", "error"), "eta_s": s.eta_s} for s in sources])
        return
    for s in sources:
        reason = f"\t{s.error}" if s.status == SourceStatus.FAILED else ""
        eta = eta_text(s.eta_s) if s.status == SourceStatus.EMBEDDING else ""
        click.echo(f"{s.id}\t{s.status}\t{s.chunks_done}/{s.chunks_total}{eta}\t{s.kind}\t{s.title}{reason}")


@knowledge.command("remove")
@click.option("--org", "org_id", required=True)
@click.argument("source_ids", nargs=-1, required=True)
def remove(org_id: str, source_ids: tuple[str, ...]) -> None:
    """Remove sources, their vectors and uploaded files."""

    async def job(services):
        await require_org(services, org_id)
        for sid in source_ids:
            if await services.storage.knowledge.get(org_id, sid) is None:
                raise NotFound(f"no source {sid} in organisation {org_id} (see `kommo-agent knowledge list`)")

        async def inner(k) -> None:
            for sid in source_ids:
                await k.remove(org_id, sid)
                click.echo(f"removed {sid}")
        await _with_knowledge(services, inner)

    run_with_services(job)


@knowledge.command("reindex")
@click.option("--org", "org_id", required=True)
@click.option("--agent", "agent_id", default=None, help="Every source of this agent (id or name).")
@click.option("--force", is_flag=True, help="Re-embed even when the content did not change.")
@_column_options
@click.option("--auto-columns", is_flag=True, help="Forget the stored column choices: roles decided automatically.")
@click.argument("source_ids", nargs=-1)
def reindex(org_id: str, agent_id: str | None, force: bool, source_ids: tuple[str, ...], embed_columns: str | None,
            keyword_columns: str | None, skip_columns: str | None, auto_columns: bool) -> None:
    """Re-index sources (unchanged content is skipped unless --force); the --*-columns options
    store new column roles on the given table sources first."""
    columns = _columns(embed_columns, keyword_columns, skip_columns)
    if columns and auto_columns:
        raise click.UsageError("--auto-columns cannot be combined with --embed/--keyword/--skip-columns")

    async def job(services):
        await require_org(services, org_id)
        sources = [await services.storage.knowledge.get(org_id, sid) for sid in source_ids]
        if agent_id:
            await require_agent(services, org_id, agent_id)
            sources += await services.storage.knowledge.for_agent(org_id, agent_id)
        if not sources or None in sources:
            raise NotFound("no such source (give source ids or --agent; see `kommo-agent knowledge list`)")

        async def inner(k) -> bool:
            nonlocal sources
            if columns or auto_columns:
                sources = [await k.intake.set_columns(org_id, s.id, columns) for s in sources]
            results = [await _index(k, org_id, s, force) for s in sources]
            return all(results)
        return await _with_knowledge(services, inner)

    if not run_with_services(job):
        sys.exit(1)


@click.group("eval")
def eval_group() -> None:
    """Evaluations."""


@eval_group.command("retrieval")
@click.option("--dataset", required=True, type=click.Path(exists=True, dir_okay=False), help="questions JSONL")
@click.option("--passages", required=True, type=click.Path(exists=True, dir_okay=False), help="passages JSONL")
@click.option("--limit", type=int, default=0, help="Use only the first N questions.")
@click.option("--embedding-cache", type=click.Path(dir_okay=False), default=None,
              help="SQLite file of embeddings reused across runs (nothing is embedded twice).")
@click.option("--translations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Questions JSONL in the passages' language with the same ids: their text stands in "
                   "for the LLM's query translation (an upper bound). Without it, query translation "
                   "is measured only when an LLM is configured.")
def eval_retrieval(dataset: str, passages: str, limit: int, embedding_cache: str | None,
                   translations: str | None) -> None:
    """Recall@1/5 and MRR of the shipped retrieval, its steps, dense-only and keyword-only
    (temporary agent, temporary vector store folder; nothing is left behind)."""
    questions = load_jsonl(dataset)[: limit or None]
    docs = load_jsonl(passages)
    reference = None
    if translations:
        try:
            reference = ReferenceTranslations(questions, load_jsonl(translations))
        except ValueError as exc:
            raise click.UsageError(f"--translations: {exc}") from None

    async def job(services):
        from core.ai.encoders.dense import CachedEmbedder, build_embedder  # noqa: PLC0415 - loads numpy/models
        from core.storage.vectors.edge import EdgeVectorStore  # noqa: PLC0415 - as above

        cache = None
        if embedding_cache:
            cache = CachedEmbedder(build_embedder(services.settings, services.meter), embedding_cache)
        with tempfile.TemporaryDirectory(prefix="kommo-eval-") as folder:
            # A private store: the evaluation never touches (or locks) the product's vectors.
            translator, label = reference, REFERENCE
            if translator is None:
                translator = build_translator(services.settings.knowledge, await services.llm())
                label = services.settings.llm.model
            k = await build_knowledge(services.settings, services.storage, meter=services.meter,
                                      vector_store=EdgeVectorStore(Path(folder)), embedder=cache,
                                      translator=translator)
            try:
                report = await evaluate_retrieval(
                    k.ingestion, k.retriever, questions, docs, translator_label=label,
                    progress=lambda msg: click.echo(f"  {msg}", err=True))
            finally:
                await k.close()
                if cache is not None:
                    cache.close()
        if cache is not None:
            click.echo(f"embeddings: {cache.computed} computed, {cache.cached} from {embedding_cache} "
                       "(ingest time excludes the cached ones)")
        click.echo(format_report(report))

    run_with_services(job)
