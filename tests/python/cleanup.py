"""Deletes the JetStream streams of one bus namespace (run.sh's own, after the check)."""

import asyncio
import sys

import nats


async def main(url: str, namespace: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name.startswith(namespace + "_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
