"""Optional LLM judge for answer extraction, through any OpenAI-compatible /v1/chat/completions endpoint.

Used only when configured (--judge-url/--judge-model): for multiple-choice
outputs that the rules cannot map to an option (VLMEvalKit flavour), and for
MathVista answers that the rule shortcuts do not catch. The prompts are our own
wording of the published approach (few-shot "match the answer to an option,
Z if none" / "extract the final answer"). Unlike VLMEvalKit, a judge that
never gives a usable answer yields "no answer", not a random letter, so runs
are reproducible. Standard library HTTP only (no extra dependency).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

_OPTION_PROMPT = (
    "You match a model's answer to one of the options of a multiple-choice question.\n"
    "Reply with the option letter only. Reply Z if the answer matches none of the options.\n\n"
    "Example:\nQuestion: What colour is the sky on a clear day?\nOptions: A. green\nB. blue\nC. red\n"
    "Answer: It is blue.\nYour output: B\n\n"
    "Example:\nQuestion: Which animal is shown?\nOptions: A. cat\nB. dog\n"
    "Answer: a horse\nYour output: Z\n\n"
    "Question: {question}\nOptions: {options}\nAnswer: {answer}\nYour output:"
)
_MATH_PROMPT = (
    "Extract the final answer from a model's response to a math question. Reply with the answer only: "
    "a number, a list like [1, 2], an option letter or the option text, with no explanation.\n\n"
    "Example:\nQuestion: How many apples are there?\nResponse: I count 3 red and 2 green, so 5 apples.\n"
    "Extracted answer: 5\n\n"
    "Question: {question}\nResponse: {response}\nExtracted answer:"
)


class JudgeError(RuntimeError):
    pass


@dataclass
class Judge:
    base_url: str  # e.g. http://localhost:8000/v1
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 3

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url}"

    def complete(self, prompt: str, temperature: float = 0.0) -> str:
        body = json.dumps({"model": self.model, "temperature": temperature, "max_tokens": 64,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as e:
            raise JudgeError(f"judge request to {url} failed: {e}") from e
        try:
            return str(payload["choices"][0]["message"]["content"]).strip()
        except (KeyError, IndexError, TypeError) as e:
            raise JudgeError(f"judge at {url} returned an unexpected body: {str(payload)[:200]}") from e

    def choose_option(self, question: str, choices: dict[str, str], answer: str) -> str | None:
        """The option letter the judge maps `answer` to, or None (it said Z, or never gave a letter)."""
        from .benchmarks.scoring import metric

        options = "\n".join(f"{k}. {v}" for k, v in choices.items())
        prompt = _OPTION_PROMPT.format(question=question, options=options, answer=answer)
        for attempt in range(self.retries):
            reply = self.complete(prompt, temperature=0.5 * attempt)
            letter = metric("mcq_match", "vlmevalkit_can_infer", pred=reply, choices=dict(choices, Z="none"))
            if letter == "Z":
                return None
            if letter in choices:
                return letter
        return None

    def extract_math_answer(self, question: str, response: str) -> str:
        return self.complete(_MATH_PROMPT.format(question=question, response=response))
