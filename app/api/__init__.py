"""The OpenAPI document, built from the same pydantic models the views validate with."""
