"""Seed 001, part 03, first block ("DB 생성"): create an SQLite table of (id, embedding BLOB) and insert one random
vector. Verbatim: plain sqlite3 and NumPy. ``seed001_sql_store.py`` does the same job with OML's SQL store."""

# https://docs.python.org/ko/3.8/library/sqlite3.html
# DB 생성
import sqlite3
import numpy as np

# SQLite 데이터베이스 연결
conn = sqlite3.connect('embedding_database.db') # 데이터베이스를 나타내는 Connection 객체를 생성
cursor = conn.cursor()

# 테이블 생성
# https://docs.python.org/ko/3.8/library/sqlite3.html#sqlite3.Cursor.execute
# 단일 SQL문만 실행 하나의 호출로 여러 SQL문을 실행하려면 executescript() 사용
cursor.execute('''CREATE TABLE embeddings
                  (id INTEGER PRIMARY KEY, embedding BLOB)''')

# 예시 임베딩 벡터 생성
embedding_vector = np.random.rand(100)

# 임베딩 벡터를 바이너리로 변환하여 데이터베이스에 삽입
cursor.execute("INSERT INTO embeddings (embedding) VALUES (?)", (sqlite3.Binary(embedding_vector.tobytes()),))

# 변경사항 저장 및 연결 종료
conn.commit()
conn.close()
