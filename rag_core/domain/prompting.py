"""The chat prompt an LLM answers from: numbered passages, and the citation format shown by
example, in the role/content messages every OpenAI-compatible server takes."""

from typing import Literal, TypedDict

from rag_core.domain.schemas import Hit

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. End every sentence "
    "with the number of the passage it comes from in square brackets. If the passages do not "
    "contain the answer, reply exactly: I don't know."
)
# Small models follow a shown format far better than a described one: one cited answer and
# one refusal, over passages of their own. Reference pages list neighbouring entries that share
# a question's words ("Which port does the server listen on?" meets `listen_addresses` before
# `port`), and a small model shown only easy passages answers with the entry whose name echoes
# the question. So the example's first passage is such a decoy, and the answer states the fact
# found in the second.
_EXAMPLE_PASSAGES = [
    "backup_dir (string)\n\nThe folder nightly backups are written to. It must be writable by "
    "the server.",
    "backup_days (integer)\n\nHow many days backups are kept; 30 by default. Older backups are "
    "deleted at night.",
    "The office closes at six on Fridays.",
]
_EXAMPLE_ANSWER = "Backups are kept for 30 days by default [2]."


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


def user_message(question: str, passages: list[str]) -> str:
    blocks = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, start=1))
    return f"Passages:\n\n{blocks}\n\nQuestion: {question}"


def prompt_messages(question: str, hits: list[Hit]) -> list[ChatMessage]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message("How long are backups kept?", _EXAMPLE_PASSAGES)},
        {"role": "assistant", "content": _EXAMPLE_ANSWER},
        {"role": "user", "content": user_message("Who founded the company?", _EXAMPLE_PASSAGES)},
        {"role": "assistant", "content": "I don't know."},
        {"role": "user", "content": user_message(question, [hit.text for hit in hits])},
    ]
