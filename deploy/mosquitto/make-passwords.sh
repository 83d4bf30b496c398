#!/bin/sh
# Create /etc/mosquitto/passwd with one user per facility of a dcmon configuration and N collectors.
# Passwords are random, printed once to a 0600 credentials file for distribution, never logged.
#   ./make-passwords.sh CONFIG_DIR [COLLECTORS=2] [PASSWD=/etc/mosquitto/passwd] [CREDENTIALS=./credentials.txt]
set -eu
config=${1:?usage: make-passwords.sh CONFIG_DIR [COLLECTORS] [PASSWD] [CREDENTIALS]}
collectors=${2:-2}
passwd=${3:-/etc/mosquitto/passwd}
creds=${4:-./credentials.txt}
umask 077
: > "$passwd.new"
: > "$creds"
users=$(for f in "$config"/facilities/*.yaml; do basename "$f" .yaml; done)
i=1
while [ "$i" -le "$collectors" ]; do users="$users collector-$i"; i=$((i + 1)); done
for u in $users; do
  pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 24)
  mosquitto_passwd -b "$passwd.new" "$u" "$pw"
  printf '%s %s\n' "$u" "$pw" >> "$creds"
done
mv "$passwd.new" "$passwd"
echo "wrote $passwd and $creds ($(echo $users | wc -w) users)"
