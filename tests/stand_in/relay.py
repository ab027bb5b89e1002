"""The stand-in's path from service revisions to Google's APIs: revisions run on Docker's bridge network and
cannot reach the host's 127.0.0.1, where the Cloud Storage emulator listens, so this forwards TCP from the
bridge's gateway address (host-local) to it.

    python relay.py LISTEN_HOST TARGET_PORT PORT_FILE      # writes the port it listens on to PORT_FILE
"""

import asyncio
import sys
from pathlib import Path


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen_host: str, target_port: int, port_file: Path) -> None:
    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))

    server = await asyncio.start_server(connected, listen_host, 0)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
