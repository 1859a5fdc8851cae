"""Dependencies of the routes, as `Annotated` aliases."""

from typing import Annotated

from fastapi import Depends, Request

from rag_core.answering import ExtractiveAnswerer
from rag_core.retrieval import Retriever
from rag_core.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_retriever(request: Request) -> Retriever:
    retriever: Retriever = request.app.state.retriever
    return retriever


def get_answerer(request: Request) -> ExtractiveAnswerer:
    answerer: ExtractiveAnswerer = request.app.state.answerer
    return answerer


SettingsDep = Annotated[Settings, Depends(get_settings)]
RetrieverDep = Annotated[Retriever, Depends(get_retriever)]
AnswererDep = Annotated[ExtractiveAnswerer, Depends(get_answerer)]
