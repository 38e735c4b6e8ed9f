"""The node: the asyncio/aiohttp shell around the chain state (the only layer with sockets)."""
