"""``python -m producers.agent …``: the agent CLI without the ``vigie`` wrapper (a hospital
server only needs this package)."""

from producers.agent.cli import agent_app

if __name__ == "__main__":
    agent_app(prog_name="vigie agent")
