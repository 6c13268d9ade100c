"""Read `/metrics` the way Prometheus does: with prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families


def families(text):
    """{family name: (type, {sample name with sorted labels: value})}; raises on text a
    scraper would refuse."""
    parsed = {}
    for family in text_string_to_metric_families(text):
        samples = {}
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        parsed[family.name] = (family.type, samples)
    return parsed


def samples(text):
    """{sample name with sorted labels: value} over every family."""
    return {
        name: value for _type, found in families(text).values() for name, value in found.items()
    }
