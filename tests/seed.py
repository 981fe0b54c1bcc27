"""The examples of the SEED document (../shared/SEED.md): the service's contract, one copy for
every suite. Each script comes with the exact HTTP reply it must get: the status and the body
without its final newline. The VM guest gets this file copied in (tests/vm/run.sh)."""

HELLO = 'def main():\n    return {"message": "Hello, World!"}\n'
HELLO_REPLY = '{"result": {"message": "Hello, World!"}, "stdout": ""}'

PANDAS = """\
import numpy as np
import pandas as pd

def main():
    # Create a simple dataset
    data = pd.DataFrame({
        'numbers': [1, 2, 3, 4, 5],
        'squares': [1, 4, 9, 16, 25]
    })

    # Calculate mean using numpy
    mean_value = np.mean(data['numbers'])

    return {
        "mean": mean_value,
        "data_shape": data.shape,
        "total_records": len(data)
    }
"""
PANDAS_RESULT = {"mean": 3.0, "data_shape": [5, 2], "total_records": 5}
PANDAS_REPLY = '{"result": {"mean": 3.0, "data_shape": [5, 2], "total_records": 5}, "stdout": ""}'

PRINTS = """\
def main():
    print("This will appear in stdout")
    print("Processing data...")

    result = {"processed": True, "items": 10}
    print(f"Processed {result['items']} items")

    return result
"""
PRINTS_REPLY = ('{"result": {"processed": true, "items": 10}, "stdout": "This will appear in '
                'stdout\\nProcessing data...\\nProcessed 10 items\\n"}')

# (name, script, HTTP status, reply body)
EXAMPLES = [
    ("hello", HELLO, 200, HELLO_REPLY),
    ("local Docker", 'def main():\n    return {"message": "Hello from local Docker!"}',
     200, '{"result": {"message": "Hello from local Docker!"}, "stdout": ""}'),
    ("basic", 'def main():\n    return {"result": "Hello, World!", "timestamp": "2024-01-01"}',
     200, '{"result": {"result": "Hello, World!", "timestamp": "2024-01-01"}, "stdout": ""}'),
    ("simple return", 'def main():\n    return {"result": "success", "value": 42}',
     200, '{"result": {"result": "success", "value": 42}, "stdout": ""}'),
    ("using libraries", PANDAS, 200, PANDAS_REPLY),
    ("data processing",
     'import pandas as pd\nimport numpy as np\n\ndef main():\n'
     '    data = pd.DataFrame({"values": [1, 2, 3, 4, 5]})\n'
     '    return {"mean": float(np.mean(data["values"])), "sum": int(data["values"].sum())}',
     200, '{"result": {"mean": 3.0, "sum": 15}, "stdout": ""}'),
    ("print statements", PRINTS, 200, PRINTS_REPLY),
    ("os module",
     'def main():\n    import os\n    return {"python_version": "3.11", '
     '"available_modules": ["numpy", "pandas", "os"]}',
     200, '{"result": {"python_version": "3.11", "available_modules": ["numpy", "pandas", "os"]}'
     ', "stdout": ""}'),
    ("error handling", 'def main():\n    raise ValueError("This is a test error")',
     400, '{"error": "Script execution error: This is a test error", "stdout": ""}'),
    ("runtime error", "def main():\n    return 1 / 0",
     400, '{"error": "Script execution error: division by zero", "stdout": ""}'),
    ("missing main", "def helper():\n    return 1",
     400, '{"error": "Script must contain a main() function", "stdout": ""}'),
    ("memory limit", "def main():\n    x = bytearray(600 << 20)\n    return len(x)",
     400, '{"error": "Script exceeded the memory limit (512 MiB)", "stdout": ""}'),
]
