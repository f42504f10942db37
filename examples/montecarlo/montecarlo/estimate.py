from .sampling import hits


def pi(client, tasks: int = 16) -> float:
    """Estimate pi on the cluster behind ``client``."""
    futures = client.map(hits, range(tasks), pure=False)
    results = client.gather(futures)
    inside = sum(i for i, _ in results)
    total = sum(n for _, n in results)
    return 4 * inside / total
