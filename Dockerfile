FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY hub hub
COPY storage storage
COPY realtime_ui realtime_ui
COPY video video
COPY telephony telephony
RUN pip install --no-cache-dir --no-deps . && useradd -r cityhub && mkdir /data && chown cityhub /data
USER cityhub
EXPOSE 8000
CMD ["cityhub", "serve", "--host", "0.0.0.0"]
