/* talaria_transform 0.2.0 -> 0.3.0: scale-out, speed, Talaria's users (issues 14, 15, 16) */

\echo Use "ALTER EXTENSION talaria_transform UPDATE TO '0.3.0'" to load this file. \quit
