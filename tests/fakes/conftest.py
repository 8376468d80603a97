"""Make the fake server's fixture available to the tests in this directory (others import it the same way)."""

from tests.fakes.openai_server import fake_openai  # noqa: F401
