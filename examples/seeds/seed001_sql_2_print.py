"""Seed 001, part 03, second block ("DB 출력"): print the table's rows as SQL INSERT statements. Verbatim."""

# DB 출력
import sqlite3

# SQLite 데이터베이스 연결
conn = sqlite3.connect('embedding_database.db')
cursor = conn.cursor()

# 테이블의 열 이름 가져오기
# # https://www.sqlite.org/pragma.html # SQLite 관련 SQL 확장으로, SQLite 라이브러리의 작업을 수정하거나 SQLite 라이브러리에 내부(테이블이 아닌) 데이터를 쿼리하는 데 사용
# https://docs.python.org/ko/3.8/library/sqlite3.html#sqlite3.Cursor.fetchall # 질의 결과의 모든 (남은) 행을 가져와서 리스트를 반환
cursor.execute("PRAGMA table_info(embeddings)") # 명명된 테이블의 각 일반 열에 대해 하나의 행을 반환
columns = cursor.fetchall()
column_names = [column[1] for column in columns]

# 테이블에서 모든 값 가져오기
cursor.execute("SELECT * FROM embeddings")
rows = cursor.fetchall()

# SQL 형식으로 출력
print("SQL 형식으로 데이터 출력:")
for row in rows:
    values = ", ".join([f"'{value}'" if isinstance(value, str) else str(value) for value in row])
    print(f"INSERT INTO embeddings ({', '.join(column_names)}) VALUES ({values});")

# 연결 종료
conn.close()
