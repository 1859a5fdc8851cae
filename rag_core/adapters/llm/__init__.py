"""Generation over the OpenAI-compatible protocol (`client`), and the embedded local model
behind it: its weights (`weights`) served by a child process (`server`).

One code path serves every provider (OpenAI, vLLM, a gateway, or the local llama.cpp server):
`RAG_LLM_BASE_URL` picks it.
"""
