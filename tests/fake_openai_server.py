"""The fault-injecting OpenAI-compatible test server shared by the API, generation and judge tests.

The implementation lives in `paralm.api.testing` so benchmarks can start it too; see there for the
options (`reply_fn`, seeded `faults`, `latency_s`, `retry_after`, `hang_s`, `fault_attempts`,
`fault_fn`) and for the request log (`.log`, `.billed_tokens()`, `.faulted_requests()`).
"""

from paralm.api.fake.faults import FAULTS
from paralm.api.fake.serve import FakeServerProcess
from paralm.api.fake.server import FakeOpenAIServer, count_words, echo_reply, prompt_word_count

__all__ = ["FAULTS", "FakeOpenAIServer", "FakeServerProcess", "count_words", "echo_reply", "prompt_word_count"]
