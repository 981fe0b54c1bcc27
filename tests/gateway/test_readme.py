"""The README's API examples, run as the README shows them.

Every ```sh block in README.md that runs curl against http://localhost:8080 is run through the
shell against a real gateway (only the port changes). Its `# HTTP N` line is the status it must
answer, and the ```json block right after it is the exact body (plus the trailing newline every
reply ends with). So the README cannot drift from what the service does.
"""
import os
import re
import subprocess

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
BLOCK = re.compile(r"```sh\n(curl [^`]*?)```\n```json\n([^`]*?)```", re.S)


def readme_examples():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    examples = []
    for command, body in BLOCK.findall(text):
        if "localhost:8080" not in command:
            continue
        status = re.search(r"^# HTTP (\d{3})$", command, re.M)
        assert status, f"README example without a '# HTTP N' line:\n{command}"
        examples.append((command, int(status.group(1)), body))
    return examples


def test_readme_has_examples():
    # The API section shows at least the hello, pandas, health and four error examples.
    assert len(readme_examples()) >= 7


def test_readme_examples(gateway):
    for command, status, body in readme_examples():
        command = command.replace("http://localhost:8080", f"http://localhost:{gateway.port}")
        command = command.replace("curl ", "curl -sS -w '\\n%{http_code}' ", 1)
        p = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (command, p.stderr)
        got_body, _, got_status = p.stdout.rpartition("\n")
        assert (int(got_status), got_body) == (status, body), command
