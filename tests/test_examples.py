"""Every example in examples/ runs end to end, as a user would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(module: str, tmp_path: Path) -> str:
    result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "DURABLE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_quickstart_runs_on_the_embedded_default_without_any_server(tmp_path: Path) -> None:
    out = run_example("examples.quickstart", tmp_path)
    assert "workflow quickstart_order: completed" in out
    assert "charge         attempt 1  failed" in out and "payment gateway timed out" in out
    assert "charge         attempt 2  completed" in out
    assert "auto_approve" in out and "manual_review" not in out
    assert "'shipped': True" in out
    assert (tmp_path / "data" / "state.db").exists()


def test_the_expense_approval_example_approves_one_and_times_out_the_other(tmp_path: Path) -> None:
    out = run_example("examples.expense_approval", tmp_path)
    assert "pending: Approve ada's expense of 120?" in out
    assert "ada: approved -> paid" in out
    assert "bob: auto_rejected -> rejected" in out


def test_the_trip_booking_saga_rolls_back_the_hotel_then_the_flight(tmp_path: Path) -> None:
    out = run_example("examples.trip_booking", tmp_path)
    assert "ada: completed" in out
    assert "bob: compensated after 'no cars available'" in out
    assert out.index("cancel_hotel (for book_hotel): completed") < out.index("cancel_flight (for book_flight): completed")


def test_the_dashboard_fans_out_and_renders_the_sections_that_loaded(tmp_path: Path) -> None:
    out = run_example("examples.dashboard_fanout", tmp_path)
    assert "dashboard: completed" in out
    assert "fetch_recommendations  failed    recommendation service timed out" in out
    assert "widgets: ['<user>', '<orders>']" in out


def test_the_canvas_pipeline_runs_a_chain_with_a_chord_of_plain_tasks_as_a_workflow(tmp_path: Path) -> None:
    out = run_example("examples.canvas_pipeline", tmp_path)
    assert "steps: extract, chord, summarize, publish" in out
    assert "workflow daily_report: completed" in out
    assert "largest    attempt 1  failed    error: warehouse connection reset" in out
    assert "largest    attempt 2  completed output: {'result': 300}" in out
    assert "workflow result: {'channel': '#reports', 'text': '5 orders, 560 EUR in all, the largest 300 EUR'}" in out


def test_the_fastapi_service_starts_an_order_answers_its_approval_and_reads_it(tmp_path: Path) -> None:
    out = run_example("examples.fastapi_app", tmp_path)
    assert "a negative amount: HTTP 422" in out  # FastAPI validated the body against the model
    assert "ada: {'customer': 'ada', 'amount': '20', 'approved': True, 'reference': 'ada-20'}" in out
    assert "bob: waiting for ['manager']" in out
    assert "approval: HTTP 204, answered again: HTTP 409" in out
    assert "bob: {'customer': 'bob', 'amount': '450', 'approved': True, 'reference': 'bob-450'}" in out
    assert "an unknown order: HTTP 404" in out
