"""Seed 001, part 03, third block ("시각화"): load the vectors back, find the top-k nearest to a random query by L2
distance and plot the query next to its matches. Verbatim (with MPLBACKEND=Agg, plt.show() does not block)."""

# 시각화
import sqlite3
import numpy as np
import matplotlib.pyplot as plt

def load_embeddings_from_database(database_path):
    conn = sqlite3.connect(database_path)
    cursor = conn.cursor()
    cursor.execute("SELECT id, embedding FROM embeddings")
    rows = cursor.fetchall()
    embeddings = {}
    for row in rows:
        id, embedding_bytes = row
        embedding_vector = np.frombuffer(embedding_bytes, dtype=np.float64) # 버퍼를 1차원 배열로 해석
        embeddings[id] = embedding_vector
    conn.close()
    return embeddings

def calculate_distances(query_vector, embeddings):
  # https://numpy.org/doc/stable/reference/generated/numpy.linalg.norm.html#numpy-linalg-norm
    distances = {}
    for id, embedding_vector in embeddings.items():
        distance = np.linalg.norm(query_vector - embedding_vector)
        distances[id] = distance
    return distances

def visualize_top_k_matches(query_vector, top_k_ids, embeddings):
    fig, axes = plt.subplots(1, len(top_k_ids) + 1, figsize=(15, 3))
    axes[0].imshow(query_vector.reshape(10, 10), cmap='viridis')
    axes[0].set_title('Query Vector')
    for i, id in enumerate(top_k_ids, 1):
        embedding_vector = embeddings[id]
        axes[i].imshow(embedding_vector.reshape(10, 10), cmap='viridis')
        axes[i].set_title(f'Top {i} Match (ID: {id})')
    plt.show()

def find_top_k_matches(query_vector, embeddings, k=5):
    distances = calculate_distances(query_vector, embeddings)
    top_k_ids = sorted(distances, key=distances.get)[:k]
    return top_k_ids

if __name__ == "__main__":
    database_path = 'embedding_database.db'
    embeddings = load_embeddings_from_database(database_path)

    # 임의의 쿼리 벡터 생성 (여기서는 랜덤 벡터로 대체)
    query_vector = np.random.rand(100)

    # 상위 k개의 매칭 찾기
    top_k_ids = find_top_k_matches(query_vector, embeddings)

    # 결과 시각화
    visualize_top_k_matches(query_vector, top_k_ids, embeddings)
